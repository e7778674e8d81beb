//! Upload routes reach the worker: the route signed into an upload
//! (`x-amz-meta-upload-route`) picks its policy and variants, one worker
//! serving every route, and the manifest records route, owner and the
//! app's metadata.

mod common;

use std::sync::Arc;

use common::{World, sample, world_with};
use upload_core::{Bytes, ObjectKey, PutOptions, Storage, UploadPolicy};
use upload_pipeline::{Fit, Outcome, OutputFormat, RouteProcessing, VariantSpec, WorkerConfig};
use upload_scan::{MemoryScanner, eicar};

fn routed_world() -> World {
    let avatar = VariantSpec::new("avatar-128", 128, 128, OutputFormat::WebP { quality: 80.0 })
        .unwrap()
        .with_fit(Fit::Cover);
    let config = WorkerConfig::new(UploadPolicy::images_and_pdf(64 << 20).unwrap())
        .with_route(
            "avatar",
            RouteProcessing::variants(vec![avatar])
                .with_policy(UploadPolicy::new(["image/jpeg", "image/png"], 32 << 20).unwrap()),
        )
        .with_route(
            "document",
            RouteProcessing::scan_only()
                .with_policy(UploadPolicy::new(["application/pdf"], 32 << 20).unwrap()),
        );
    world_with(Arc::new(MemoryScanner::new()), config)
}

async fn upload(w: &World, key: &str, body: Bytes, ct: &str, meta: &[(&str, &str)]) -> ObjectKey {
    let k = ObjectKey::new(key).unwrap();
    let mut opts = PutOptions::default()
        .with_content_type(ct)
        .with_create_only(true);
    for (n, v) in meta {
        opts = opts.with_metadata(n, *v);
    }
    w.uploads.put(&k, body, opts).await.unwrap();
    k
}

#[tokio::test]
async fn each_route_gets_its_own_processing_from_one_worker() {
    let w = routed_world();
    let photo = sample("photos/photo_colorfulcups_2560x1600_gps.jpg");
    let avatar = upload(
        &w,
        "avatars/u1/a.jpg",
        photo.clone(),
        "image/jpeg",
        &[
            ("upload-route", "avatar"),
            ("upload-owner", "u1"),
            ("profile-id", "77"),
        ],
    )
    .await;
    let doc = upload(
        &w,
        "documents/u1/d.pdf",
        sample("photos/exiftool_PDF.pdf"),
        "application/pdf",
        &[("upload-route", "document"), ("upload-owner", "u1")],
    )
    .await;
    // The same photo, through no route: the worker's default variants.
    let plain = upload(&w, "uploads/u1/p.jpg", photo.clone(), "image/jpeg", &[]).await;
    // A photo sent through the document route is refused by that route's
    // policy, though the worker's default policy takes JPEGs.
    let misrouted = upload(
        &w,
        "documents/u1/x.jpg",
        photo,
        "image/jpeg",
        &[("upload-route", "document"), ("upload-owner", "u1")],
    )
    .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.messages, stats.failed), (4, 0));

    let m = w.manifest(&avatar).await;
    assert_eq!(m.verdict, Outcome::Clean);
    let dims: Vec<_> = m
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.width, v.height, v.content_type.as_str()))
        .collect();
    assert_eq!(dims, [("avatar-128", 128, 128, "image/webp")]);
    assert_eq!(m.upload.route.as_deref(), Some("avatar"));
    assert_eq!(m.upload.owner.as_deref(), Some("u1"));
    assert_eq!(
        m.upload.metadata.get("profile-id").map(String::as_str),
        Some("77")
    );
    let v = w.processed.get(&m.variants[0].key).await.unwrap();
    let img = image::load_from_memory(&v.body).unwrap();
    assert_eq!((img.width(), img.height()), (128, 128));

    let m = w.manifest(&doc).await;
    assert_eq!((m.verdict, m.variants.len()), (Outcome::Clean, 0));
    assert_eq!(m.upload.route.as_deref(), Some("document"));
    assert_eq!(
        w.uploads.get_tags(&doc).await.unwrap().get("scan-status"),
        Some("CLEAN"),
        "a document is scanned, tagged and kept"
    );

    let m = w.manifest(&plain).await;
    let names: Vec<_> = m.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["thumb", "medium"]);
    assert_eq!(m.upload, Default::default());

    let m = w.manifest(&misrouted).await;
    assert_eq!((m.verdict, m.variants.len()), (Outcome::Rejected, 0));
    assert!(
        m.reason.as_deref().unwrap_or("").contains("image/jpeg"),
        "{:?}",
        m.reason
    );
    assert_eq!(
        w.uploads
            .get_tags(&misrouted)
            .await
            .unwrap()
            .get("scan-status"),
        None,
        "never tagged CLEAN"
    );
    assert!(
        w.uploads.head(&misrouted).await.is_ok(),
        "the original stays"
    );
}

#[tokio::test]
async fn routed_uploads_are_scanned_and_quarantined_like_any_other() {
    let w = routed_world();
    let k = upload(
        &w,
        "documents/u2/e.pdf",
        eicar(),
        "application/pdf",
        &[("upload-route", "document"), ("upload-owner", "u2")],
    )
    .await;
    // A route the worker does not know: the default processing, and the
    // route is still recorded.
    let unknown = upload(
        &w,
        "other/u2/p.jpg",
        sample("photos/photo_colorfulcups_2560x1600_gps.jpg"),
        "image/jpeg",
        &[("upload-route", "banner"), ("upload-owner", "u2")],
    )
    .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    // Two ObjectCreated, and the ObjectRemoved of the quarantine move.
    assert_eq!((stats.messages, stats.failed), (3, 0));
    let m = w.manifest(&k).await;
    assert_eq!(m.verdict, Outcome::Infected);
    assert_eq!(m.upload.route.as_deref(), Some("document"));
    assert_eq!(m.upload.owner.as_deref(), Some("u2"));
    assert!(w.uploads.head(&k).await.is_err(), "moved to quarantine");
    let m = w.manifest(&unknown).await;
    assert_eq!(m.upload.route.as_deref(), Some("banner"));
    let names: Vec<_> = m.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["thumb", "medium"]);
}
