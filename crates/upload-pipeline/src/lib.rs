//! The upload worker and what it is made of.
//!
//! - [`codec`]: the [`ImageCodec`] trait and [`StandardCodec`] (decode under
//!   limits, EXIF orientation, resize, WebP encode, metadata stripped).
//!
//! All fallible functions return this crate's [`Error`].

pub mod codec;
pub mod error;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use codec::{
    DecodeLimits, DecodedImage, EncodedVariant, ImageCodec, OutputFormat, StandardCodec,
    VariantSpec,
};
pub use error::{Error, Result};
