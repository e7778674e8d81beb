//! PDF posters (feature `pdf`): real PDFs through the worker on in-memory
//! parts with `PdfProcessor` (Debian's poppler-utils), and encrypted,
//! truncated and hostile ones refused. Samples: `samples/media`
//! (how they were made in `samples/MANIFEST.tsv`, CC0).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{World, sample, world_with};
use upload_core::{Bytes, Storage, UploadPolicy};
use upload_pipeline::media::{MediaInput, MediaProcessor, MediaRejection, PdfLimits, PdfProcessor};
use upload_pipeline::{
    DocumentInfo, Error, MediaInfo, Outcome, StandardCodec, VariantSpec, WorkerConfig,
};
use upload_scan::MemoryScanner;

const DOC: &str = "media/generated_letter_3pages.pdf";
const ENCRYPTED: &str = "media/generated_letter_3pages_encrypted_aes256.pdf";

fn pdf_processor() -> PdfProcessor {
    PdfProcessor::new(Arc::new(StandardCodec::default()))
}

fn pdf_world(processor: PdfProcessor) -> World {
    let config = WorkerConfig::new(UploadPolicy::images_and_pdf(64 << 20).unwrap())
        .with_processor(Arc::new(processor));
    world_with(Arc::new(MemoryScanner::new()), config)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A hand-written one-page PDF with `mediabox` and `catalog_extra` in its
/// catalog, with a correct cross-reference table.
fn hand_pdf(mediabox: &str, catalog_extra: &str) -> Bytes {
    let content = "0.9 0.1 0.1 rg 10 10 50 50 re f\n";
    let objects = [
        format!("<< /Type /Catalog /Pages 2 0 R {catalog_extra} >>"),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        format!("<< /Type /Page /Parent 2 0 R /MediaBox [{mediabox}] /Contents 4 0 R >>"),
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ),
    ];
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out += &format!("{} 0 obj\n{o}\nendobj\n", i + 1);
    }
    let xref = out.len();
    out += &format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for o in offsets {
        out += &format!("{o:010} 00000 n \n");
    }
    out += &format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    Bytes::from(out)
}

/// Processes `body` as an upload at `key` and returns its manifest.
async fn run_one(w: &World, key: &str, body: Bytes) -> upload_pipeline::Manifest {
    let k = w.upload(key, body, "application/pdf").await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.messages, stats.failed), (1, 0), "{stats:?}");
    w.manifest(&k).await
}

#[tokio::test]
async fn pdf_gets_a_first_page_poster_and_its_page_count() {
    let w = pdf_world(pdf_processor());
    let k = w
        .upload("uploads/u/doc.pdf", sample(DOC), "application/pdf")
        .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.messages, stats.clean, stats.failed), (1, 1, 0));
    let m = w.manifest(&k).await;
    assert_eq!(m.verdict, Outcome::Clean);
    assert_eq!(m.source.sniffed.as_deref(), Some("application/pdf"));
    assert_eq!(m.image, None, "a PDF is not an image");
    let Some(MediaInfo::Document(doc)) = &m.media else {
        panic!("no document info: {:?}", m.media);
    };
    assert_eq!(doc.page_count, 3);
    assert!(doc.placeholder.is_some(), "placeholder of the first page");
    // US Letter, 612 x 792 pt, within 256 and 1024 boxes.
    let dims: Vec<_> = m
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.width, v.height))
        .collect();
    // pdftoppm renders the page 1024 px high (791.3 wide, rounded up).
    assert_eq!(dims, [("thumb", 198, 256), ("medium", 792, 1024)]);
    for (v, spec) in m.variants.iter().zip(VariantSpec::defaults()) {
        // The variant key scheme of images: original, name, version, spec.
        assert_eq!(
            v.key.as_str(),
            format!(
                "uploads/u/doc.pdf/{}-{}-{}.webp",
                v.name,
                &m.source.etag[..16],
                spec.fingerprint()
            )
        );
        let got = w.processed.get(&v.key).await.unwrap();
        assert_eq!(got.meta.content_type.as_deref(), Some("image/webp"));
        assert!(
            !contains(&got.body, b"EXIF")
                && !contains(&got.body, b"XMP ")
                && !contains(&got.body, b"ICCP"),
            "no metadata chunk in {}",
            v.key
        );
        let img = image::load_from_memory(&got.body).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (v.width, v.height));
        // The first page: a blue band on top, a red square in the middle.
        let top = img.get_pixel(img.width() / 2, img.height() / 20).0;
        let middle = img.get_pixel(img.width() / 2, img.height() / 2).0;
        assert!(top[2] > 150 && top[0] < 80, "blue band, got {top:?}");
        assert!(
            middle[0] > 180 && middle[1] < 80,
            "red square, got {middle:?}"
        );
    }
    assert_eq!(
        w.uploads.get_tags(&k).await.unwrap().get("scan-status"),
        Some("CLEAN")
    );
}

#[tokio::test]
async fn old_manifests_without_media_still_parse() {
    let mut m =
        upload_pipeline::testkit::notify::sample_manifest("uploads/u/a.pdf", Outcome::Clean);
    let json = serde_json::to_value(&m).unwrap();
    assert!(json.get("media").is_none(), "absent when none");
    let back: upload_pipeline::Manifest = serde_json::from_value(json).unwrap();
    assert_eq!(back.media, None);
    m.media = Some(MediaInfo::Document(DocumentInfo::new(7)));
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(
        json["media"],
        serde_json::json!({"kind": "document", "page_count": 7})
    );
    let back: upload_pipeline::Manifest = serde_json::from_value(json).unwrap();
    assert_eq!(back, m);
}

#[tokio::test]
async fn encrypted_pdf_is_rejected_and_never_tagged_clean() {
    let w = pdf_world(pdf_processor());
    let m = run_one(&w, "uploads/u/enc.pdf", sample(ENCRYPTED)).await;
    assert_eq!(m.verdict, Outcome::Rejected);
    assert_eq!(m.scan, Some(Outcome::Clean), "scanned clean all the same");
    assert_eq!(m.reason.as_deref(), Some("the document is encrypted"));
    assert!(m.variants.is_empty() && m.media.is_none());
    let tags = w.uploads.get_tags(&m.source.key).await.unwrap();
    assert_eq!(tags.get("upload-status"), Some("REJECTED"));
    assert_eq!(tags.get("scan-status"), None);
}

#[tokio::test]
async fn truncated_pdf_is_rejected_as_broken() {
    let w = pdf_world(pdf_processor());
    let doc = sample(DOC);
    let m = run_one(&w, "uploads/u/cut.pdf", doc.slice(..doc.len() / 2)).await;
    assert_eq!(m.verdict, Outcome::Rejected);
    let reason = m.reason.unwrap();
    assert!(
        reason.starts_with("broken or truncated file: pdfinfo: "),
        "{reason}"
    );
    assert!(m.variants.is_empty());
}

#[tokio::test]
async fn huge_mediabox_is_rejected_before_rendering() {
    let w = pdf_world(pdf_processor());
    let m = run_one(
        &w,
        "uploads/u/huge.pdf",
        hand_pdf("0 0 9000000 9000000", ""),
    )
    .await;
    assert_eq!(m.verdict, Outcome::Rejected);
    assert_eq!(
        m.reason.as_deref(),
        Some("a page of 9000000 x 9000000 pt is larger than 14400 pt a side")
    );
    // The same page within the limit renders.
    let w = pdf_world(pdf_processor());
    let m = run_one(&w, "uploads/u/ok.pdf", hand_pdf("0 0 600 300", "")).await;
    assert_eq!(m.verdict, Outcome::Clean);
    let dims: Vec<_> = m.variants.iter().map(|v| (v.width, v.height)).collect();
    assert_eq!(dims, [(256, 128), (1024, 512)]);
}

#[tokio::test]
async fn deeply_nested_pdf_is_rejected_as_broken_not_hung() {
    let w = pdf_world(pdf_processor());
    let depth = 200_000;
    let nested = format!("/X {}{}", "[".repeat(depth), "]".repeat(depth));
    let started = Instant::now();
    let m = run_one(&w, "uploads/u/nest.pdf", hand_pdf("0 0 612 792", &nested)).await;
    assert_eq!(m.verdict, Outcome::Rejected);
    let reason = m.reason.unwrap();
    assert!(
        reason.starts_with("broken or truncated file: pdfinfo reported ")
            && reason.contains("syntax errors"),
        "{reason}"
    );
    // Within the processor's 20 s limit (it is never waited for longer).
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn missing_poppler_is_an_unsupported_rejection_naming_the_package() {
    let w = pdf_world(pdf_processor().with_tools("/nonexistent/pdfinfo", "/nonexistent/pdftoppm"));
    let m = run_one(&w, "uploads/u/doc.pdf", sample(DOC)).await;
    assert_eq!(m.verdict, Outcome::Rejected);
    assert_eq!(
        m.reason.as_deref(),
        Some(
            "application/pdf is not supported here: /nonexistent/pdfinfo is not installed (apt install poppler-utils)"
        )
    );
}

/// A stand-in for a tool: a shell script at a private path.
fn script(dir: &tempfile::TempDir, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_tool_past_its_time_limit_is_killed_and_the_pdf_refused() {
    let dir = tempfile::tempdir().unwrap();
    let slow = script(&dir, "pdfinfo", "sleep 60");
    let p = pdf_processor()
        .with_tools(&slow, "/nonexistent/pdftoppm")
        .with_limits(PdfLimits::default().with_timeout(Duration::from_millis(300)));
    let started = Instant::now();
    let got = p.process(MediaInput::new(
        sample(DOC),
        "application/pdf",
        VariantSpec::defaults(),
    ));
    match got {
        Err(Error::MediaRejected {
            reason: MediaRejection::TimedOut { tool, limit_ms },
            ..
        }) => assert_eq!((tool, limit_ms), ("pdfinfo", 300)),
        other => panic!("{other:?}"),
    }
    // Killed, not waited for: far less than the 60 s it would sleep.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn tools_run_under_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    // Reports its address-space limit (KiB) as the page count.
    let probe = script(
        &dir,
        "pdfinfo",
        "echo \"Pages: $(ulimit -v)\"; echo \"Page size: 612 x 792 pts\"",
    );
    let p = pdf_processor()
        .with_tools(&probe, "/nonexistent/pdftoppm")
        .with_limits(
            PdfLimits::default()
                .with_memory(256 << 20)
                .with_max_pages(u64::MAX),
        );
    let got = p
        .process(MediaInput::new(sample(DOC), "application/pdf", Vec::new()))
        .unwrap();
    assert_eq!(
        got.media,
        Some(MediaInfo::Document(DocumentInfo::new(256 << 10)))
    );
    assert!(got.variants.is_empty());
}

#[test]
fn too_many_pages_is_refused() {
    let p = pdf_processor().with_limits(PdfLimits::default().with_max_pages(2));
    match p.process(MediaInput::new(
        sample(DOC),
        "application/pdf",
        VariantSpec::defaults(),
    )) {
        Err(Error::MediaRejected {
            reason: MediaRejection::TooManyPages { pages, max },
            ..
        }) => assert_eq!((pages, max), (3, 2)),
        other => panic!("{other:?}"),
    }
}
