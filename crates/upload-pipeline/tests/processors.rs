//! Media processors of the user's own through the worker: one added for
//! a type replaces the built-in image processor, and its refusal rejects
//! the upload before it is tagged CLEAN.

mod common;

use std::sync::Arc;

use common::{sample, world_with};
use upload_core::{Storage, UploadPolicy};
use upload_pipeline::media::{MediaInput, MediaProcessor, MediaRejection, Processed};
use upload_pipeline::{DocumentInfo, Error, MediaInfo, Outcome, Result, WorkerConfig};
use upload_scan::MemoryScanner;

/// Handles PNG: refuses the images it is told to, else records the byte
/// count as a "page count" and renders nothing.
#[derive(Debug)]
struct PngCounter {
    refuse: bool,
}

impl MediaProcessor for PngCounter {
    fn name(&self) -> &'static str {
        "png-counter"
    }

    fn handles(&self, content_type: &str) -> bool {
        content_type == "image/png"
    }

    fn process(&self, input: MediaInput) -> Result<Processed> {
        if self.refuse {
            return Err(Error::MediaRejected {
                content_type: input.content_type,
                reason: MediaRejection::TooManyPages { pages: 9, max: 1 },
            });
        }
        let mut p = Processed::default();
        p.media = Some(MediaInfo::Document(DocumentInfo::new(
            input.body.len() as u64
        )));
        Ok(p)
    }
}

fn config(refuse: bool) -> WorkerConfig {
    WorkerConfig::new(UploadPolicy::images_and_pdf(64 << 20).unwrap())
        .with_processor(Arc::new(PngCounter { refuse }))
}

#[tokio::test]
async fn a_processor_added_for_a_type_replaces_the_image_processor() {
    let w = world_with(Arc::new(MemoryScanner::new()), config(false));
    let png = sample("testdata/pngsuite_basn6a16.png");
    let jpeg = sample("testdata/hopper.jpg");
    let kp = w.upload("uploads/u/a.png", png.clone(), "image/png").await;
    let kj = w.upload("uploads/u/b.jpg", jpeg, "image/jpeg").await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.clean, stats.failed), (2, 0));
    let m = w.manifest(&kp).await;
    assert_eq!(m.verdict, Outcome::Clean);
    assert!(m.variants.is_empty() && m.image.is_none());
    assert_eq!(
        m.media,
        Some(MediaInfo::Document(DocumentInfo::new(png.len() as u64)))
    );
    // Other images still go through the built-in image processor.
    let m = w.manifest(&kj).await;
    assert_eq!(m.variants.len(), 2);
    assert!(m.image.is_some() && m.media.is_none());
}

#[tokio::test]
async fn a_processor_refusal_rejects_the_upload_untagged() {
    let w = world_with(Arc::new(MemoryScanner::new()), config(true));
    let k = w
        .upload(
            "uploads/u/a.png",
            sample("testdata/pngsuite_basn6a16.png"),
            "image/png",
        )
        .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.rejected, stats.failed), (1, 0));
    let m = w.manifest(&k).await;
    assert_eq!(m.verdict, Outcome::Rejected);
    assert_eq!(m.scan, Some(Outcome::Clean));
    assert_eq!(
        m.reason.as_deref(),
        Some("9 pages is more than the 1 allowed")
    );
    let tags = w.uploads.get_tags(&k).await.unwrap();
    assert_eq!(tags.get("scan-status"), None);
    assert_eq!(tags.get("upload-status"), Some("REJECTED"));
}
