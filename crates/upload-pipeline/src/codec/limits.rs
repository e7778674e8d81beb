//! [`DecodeLimits`]: what a decode may cost, checked before pixels are
//! allocated.

/// Limits applied by [`ImageCodec::decode`](super::ImageCodec::decode)
/// before any pixel buffer is allocated (the decompression-bomb guard).
///
/// Images are judged by their pixels and memory, not by one side: by
/// default there is no limit on width or height alone, so a 20000 × 1
/// strip (20,000 pixels) decodes like any small image and gets variants of
/// 256 × 1. Encoders' own side limits (WebP's 16,383 pixels) apply to the
/// variants they write, not to the input.
///
/// Every limit is inclusive: an image exactly at a limit is accepted. An
/// input over a limit is refused with
/// [`Error::ImageTooLarge`](crate::Error::ImageTooLarge), whose `limit`
/// field names the limit and its value. The checks run in this order:
/// `max_input_bytes` (on the encoded size), then `max_width`, `max_height`
/// and `max_pixels` (on the dimensions declared by the header), then
/// `max_frames` (on the frames an animation holds), then `max_alloc` (on
/// the size of the decoded pixel buffer).
///
/// Build one from [`DecodeLimits::default`] and the `with_*` builders:
///
/// ```
/// use upload_pipeline::DecodeLimits;
///
/// let limits = DecodeLimits::default()
///     .with_max_pixels(12_000_000)
///     .with_max_input_bytes(20 * 1024 * 1024);
/// assert_eq!(limits.max_width, u32::MAX); // no limit on one side
/// assert_eq!(limits.max_pixels, 12_000_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeLimits {
    /// Largest accepted width in pixels, as declared by the header (before
    /// EXIF orientation is applied). Default `u32::MAX`: no limit of its
    /// own, the image is judged by [`max_pixels`](Self::max_pixels) and
    /// [`max_alloc`](Self::max_alloc); set it for a policy of your own.
    pub max_width: u32,
    /// Largest accepted height in pixels, as declared by the header (before
    /// EXIF orientation is applied). Default `u32::MAX`, as
    /// [`max_width`](Self::max_width).
    pub max_height: u32,
    /// Largest accepted `width * height`, in pixels. Default 40 000 000
    /// (40 megapixels).
    pub max_pixels: u64,
    /// Largest decoded pixel buffer, in bytes (`width * height * bytes per
    /// pixel` of the decoder's native colour type); what is left of it
    /// after that buffer is handed to the decoder as its own allocation
    /// budget. Default 512 MiB.
    ///
    /// The decoders' scratch memory (for example the coefficient planes of
    /// a progressive JPEG) is only partly covered by this budget: plan for
    /// a peak of a few times `max_pixels * 4` bytes per concurrent decode.
    pub max_alloc: u64,
    /// Largest accepted encoded input, in bytes. Default 64 MiB.
    pub max_input_bytes: u64,
    /// Most frames an animated GIF, WebP or APNG may hold (counted from
    /// its container before decoding: GIF image descriptors, WebP `ANMF`
    /// chunks, the APNG `acTL` frame count). Only the first frame is ever
    /// decoded, so this is a policy limit on what uploads are accepted,
    /// not a memory one. Default 10 000.
    pub max_frames: u64,
}

impl DecodeLimits {
    /// Default for [`DecodeLimits::max_width`]: `u32::MAX` (no limit on
    /// the width alone).
    pub const DEFAULT_MAX_WIDTH: u32 = u32::MAX;
    /// Default for [`DecodeLimits::max_height`]: `u32::MAX` (no limit on
    /// the height alone).
    pub const DEFAULT_MAX_HEIGHT: u32 = u32::MAX;
    /// Default for [`DecodeLimits::max_pixels`]: 40 000 000 pixels.
    pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;
    /// Default for [`DecodeLimits::max_alloc`]: 512 MiB, in bytes.
    pub const DEFAULT_MAX_ALLOC: u64 = 512 * 1024 * 1024;
    /// Default for [`DecodeLimits::max_input_bytes`]: 64 MiB, in bytes.
    pub const DEFAULT_MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;
    /// Default for [`DecodeLimits::max_frames`]: 10 000 frames.
    pub const DEFAULT_MAX_FRAMES: u64 = 10_000;

    /// Returns these limits with [`max_width`](Self::max_width) set, in
    /// pixels.
    #[must_use]
    pub fn with_max_width(mut self, pixels: u32) -> Self {
        self.max_width = pixels;
        self
    }

    /// Returns these limits with [`max_height`](Self::max_height) set, in
    /// pixels.
    #[must_use]
    pub fn with_max_height(mut self, pixels: u32) -> Self {
        self.max_height = pixels;
        self
    }

    /// Returns these limits with [`max_pixels`](Self::max_pixels) set
    /// (`width * height`).
    #[must_use]
    pub fn with_max_pixels(mut self, pixels: u64) -> Self {
        self.max_pixels = pixels;
        self
    }

    /// Returns these limits with [`max_alloc`](Self::max_alloc) set, in
    /// bytes.
    #[must_use]
    pub fn with_max_alloc(mut self, bytes: u64) -> Self {
        self.max_alloc = bytes;
        self
    }

    /// Returns these limits with [`max_input_bytes`](Self::max_input_bytes)
    /// set, in bytes.
    #[must_use]
    pub fn with_max_input_bytes(mut self, bytes: u64) -> Self {
        self.max_input_bytes = bytes;
        self
    }

    /// Returns these limits with [`max_frames`](Self::max_frames) set.
    #[must_use]
    pub fn with_max_frames(mut self, frames: u64) -> Self {
        self.max_frames = frames;
        self
    }
}

impl Default for DecodeLimits {
    /// 40 megapixels in any shape (no limit on one side), a 512 MiB pixel
    /// buffer, a 64 MiB input and 10 000 animation frames.
    fn default() -> Self {
        Self {
            max_width: Self::DEFAULT_MAX_WIDTH,
            max_height: Self::DEFAULT_MAX_HEIGHT,
            max_pixels: Self::DEFAULT_MAX_PIXELS,
            max_alloc: Self::DEFAULT_MAX_ALLOC,
            max_input_bytes: Self::DEFAULT_MAX_INPUT_BYTES,
            max_frames: Self::DEFAULT_MAX_FRAMES,
        }
    }
}
