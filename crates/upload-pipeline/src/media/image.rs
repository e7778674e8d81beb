//! [`ImageProcessor`]: images decoded under limits into their variants.

use std::sync::Arc;
use std::time::Instant;

use super::{MediaInput, MediaProcessor, MediaRejection, Processed, render_all};
use crate::codec::{DecodeLimits, ImageCodec};
use crate::error::{Error, Result};
use crate::manifest::ImageInfo;
use crate::metrics::{self, Stage};

/// The processor of `image/*` uploads: refuses an image with a ZIP
/// archive hidden in it ([`MediaRejection::HiddenArchive`]), decodes it
/// with an [`ImageCodec`] under [`DecodeLimits`] (header checks before any
/// allocation, shrink-on-load for the variants asked), renders each
/// variant, and gives the manifest the upright size at full scale and a
/// placeholder ([`ImageInfo`]). With no variants asked, it only checks for
/// a hidden archive (nothing is decoded, nothing added to the manifest).
///
/// The worker always has one, built from the codec given to
/// [`UploadProcessor::new`](crate::UploadProcessor::new) and
/// [`WorkerConfig::decode_limits`](crate::WorkerConfig::decode_limits),
/// asked after the processors of
/// [`WorkerConfig::processors`](crate::WorkerConfig::processors): add one
/// there to replace it.
#[derive(Debug, Clone)]
pub struct ImageProcessor {
    codec: Arc<dyn ImageCodec>,
    limits: DecodeLimits,
}

impl ImageProcessor {
    /// Decodes with `codec` under `limits`.
    pub fn new(codec: Arc<dyn ImageCodec>, limits: DecodeLimits) -> Self {
        Self { codec, limits }
    }
}

impl MediaProcessor for ImageProcessor {
    fn name(&self) -> &'static str {
        "image"
    }

    /// Every `image/*` type; the codec refuses those it cannot decode
    /// ([`Error::UnsupportedImage`], a rejection).
    fn handles(&self, content_type: &str) -> bool {
        content_type.starts_with("image/")
    }

    fn process(&self, input: MediaInput) -> Result<Processed> {
        let MediaInput {
            body,
            content_type,
            variants,
        } = input;
        if !upload_core::sniff::embedded_zips(&body).is_empty() {
            // clamd does not always unpack an archive inside an image to
            // its limits (past MaxFiles it answers OK without the limits
            // alert): such a polyglot is never tagged CLEAN.
            return Err(Error::MediaRejected {
                content_type,
                reason: MediaRejection::HiddenArchive,
            });
        }
        if variants.is_empty() {
            return Ok(Processed::default());
        }
        let decode_started = Instant::now();
        let img = tracing::info_span!("decode", bytes = body.len())
            .in_scope(|| self.codec.decode_for(&body, &self.limits, &variants))?;
        metrics::observe(Stage::Decode, decode_started);
        drop(body);
        let (variants, placeholder) = render_all(self.codec.as_ref(), &img, &variants)?;
        Ok(Processed {
            variants,
            image: Some(ImageInfo {
                width: img.source_size.0,
                height: img.source_size.1,
                placeholder,
            }),
            media: None,
        })
    }
}
