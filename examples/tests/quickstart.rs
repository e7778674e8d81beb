//! End to end, in-process, over real HTTP: the bundled photos plus hostile
//! files through presign → upload → event → sniff → scan → variants → URL.

use std::path::PathBuf;

use upload_core::{ObjectKey, Storage};
use upload_examples::quickstart::{self, FileReport, Options, World};

fn write(dir: &std::path::Path, name: &str, body: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn by_name<'a>(reports: &'a [FileReport], name: &str) -> &'a FileReport {
    reports
        .iter()
        .find(|r| r.file.ends_with(name))
        .unwrap_or_else(|| panic!("no report for {name}"))
}

/// The page count the JSON line carries for a document.
#[cfg(feature = "pdf")]
fn page_count(r: &FileReport) -> Option<u64> {
    serde_json::to_value(r).unwrap()["media"]["page_count"].as_u64()
}

fn dims(r: &FileReport) -> Vec<(&str, u32, u32)> {
    r.variants
        .iter()
        .map(|v| (v.name.as_str(), v.width, v.height))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_photos_and_hostile_files_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    let mut files = quickstart::bundled_samples().unwrap();
    assert_eq!(files.len(), 14, "{files:?}");
    // A PDF carrying the project's test signature: the type passes, the
    // scanner catches it.
    let eicar = [b"%PDF-1.4\n".as_slice(), &upload_scan::test_marker()].concat();
    files.push(write(&inputs, "eicar.pdf", &eicar));
    files.push(write(
        &inputs,
        "not-an-image.jpg",
        b"plain text pretending to be a JPEG",
    ));
    files.push(write(
        &inputs,
        "notes.txt",
        b"text is not allowed by the policy",
    ));
    let out = tmp.path().join("out");
    let world = World::start(64 << 20).await.unwrap();
    let reports = quickstart::run(&world, &Options::new(files.clone(), out.clone()))
        .await
        .unwrap();
    assert_eq!(reports.len(), files.len(), "one report per file, in order");
    for (r, f) in reports.iter().zip(&files) {
        assert_eq!(r.file, f.display().to_string());
    }

    // A 4K photo (8.5 MB) goes multipart in two parts.
    let big = by_name(&reports, "photo_elephants_3840x2160_progressive.jpg");
    assert_eq!(
        (big.upload, big.parts, big.verdict),
        (Some("multipart"), 2, "clean")
    );
    assert_eq!(dims(big), [("thumb", 256, 144), ("medium", 1024, 576)]);
    let key = ObjectKey::new(big.key.clone().unwrap()).unwrap();
    let original = world.uploads.head(&key).await.unwrap();
    assert_eq!(original.size, 8_484_634);
    assert!(
        original.etag.ends_with("-2"),
        "multipart ETag {}",
        original.etag
    );
    assert_eq!(
        world.uploads.get(&key).await.unwrap().body.as_ref(),
        std::fs::read(
            files
                .iter()
                .find(|f| f.ends_with("photo_elephants_3840x2160_progressive.jpg"))
                .unwrap()
        )
        .unwrap(),
        "the original is stored byte for byte"
    );

    // EXIF orientation 6: width and height swapped.
    let rot = by_name(&reports, "derived_bythewater_orient6.jpg");
    assert_eq!((rot.upload, rot.verdict), (Some("put"), "clean"));
    assert_eq!(dims(rot), [("thumb", 160, 256), ("medium", 640, 1024)]);
    // The JSON line carries what the manifest holds (the upright size and
    // placeholder), and the manifest is written beside the variants.
    let image = rot.image.as_ref().expect("image info");
    assert_eq!((image.width, image.height), (1600, 2560));
    let placeholder = image.placeholder.as_ref().expect("placeholder");
    assert!(placeholder.dominant_color.starts_with('#') && placeholder.dominant_color.len() == 7);
    assert!(!placeholder.thumbhash.is_empty());
    let written = rot.manifest.as_deref().expect("manifest path");
    assert!(written.starts_with(out.to_str().unwrap()) && written.ends_with("/manifest.json"));
    let manifest: upload_pipeline::Manifest =
        serde_json::from_slice(&std::fs::read(written).unwrap()).unwrap();
    assert_eq!(manifest.image.as_ref(), Some(image));
    assert_eq!(manifest.variants.len(), rot.variants.len());
    let line = serde_json::to_value(rot).unwrap();
    assert_eq!(line["image"]["width"], 1600);
    assert_eq!(line["manifest"], written);

    // The GPS-tagged photo: no variant carries EXIF, XMP or GPS.
    let gps = by_name(&reports, "photo_colorfulcups_2560x1600_gps.jpg");
    assert_eq!(dims(gps), [("thumb", 256, 160), ("medium", 1024, 640)]);
    for r in &reports {
        for v in &r.variants {
            let body = std::fs::read(&v.path).unwrap();
            assert_eq!(body.len() as u64, v.bytes, "{}", v.path);
            assert_eq!(&body[..4], b"RIFF");
            assert_eq!(&body[8..12], b"WEBP");
            for marker in [&b"Exif"[..], b"EXIF", b"XMP ", b"GPS", b"ICCP"] {
                assert!(
                    !body.windows(marker.len()).any(|w| w == marker),
                    "{} carries {marker:?}",
                    v.path
                );
            }
            assert!(v.path.starts_with(out.to_str().unwrap()));
            assert!(v.path.ends_with(&v.key));
        }
    }

    // Alpha PNG smaller than both boxes: never enlarged.
    let png = by_name(&reports, "transparent.png");
    assert_eq!(dims(png), [("thumb", 200, 150), ("medium", 200, 150)]);

    // PDF: with feature `pdf`, its first page (8 x 8 pt) as variants and
    // its page count; without, scanned, kept, no variants, the original
    // served by presigned GET.
    let pdf = by_name(&reports, "exiftool_PDF.pdf");
    assert_eq!(
        (pdf.verdict, pdf.sniffed.as_deref()),
        ("clean", Some("application/pdf"))
    );
    let served = reqwest::get(pdf.url.clone().unwrap()).await.unwrap();
    assert_eq!(served.status().as_u16(), 200);
    let served = served.bytes().await.unwrap();
    #[cfg(feature = "pdf")]
    {
        assert_eq!(dims(pdf), [("thumb", 256, 256), ("medium", 1024, 1024)]);
        assert_eq!(page_count(pdf), Some(1));
        assert_eq!(served.len() as u64, pdf.variants[1].bytes);
        let letter = by_name(&reports, "generated_letter_3pages.pdf");
        assert_eq!(dims(letter), [("thumb", 198, 256), ("medium", 792, 1024)]);
        assert_eq!(page_count(letter), Some(3));
        let locked = by_name(&reports, "generated_letter_3pages_encrypted_aes256.pdf");
        assert_eq!(locked.verdict, "rejected");
        assert!(
            locked.reason.as_deref().unwrap().contains("encrypted"),
            "{locked:?}"
        );
        assert!(locked.variants.is_empty() && locked.url.is_none());
    }
    #[cfg(not(feature = "pdf"))]
    {
        assert!(pdf.variants.is_empty() && pdf.media.is_none());
        assert_eq!(served.len(), 8907);
        let locked = by_name(&reports, "generated_letter_3pages_encrypted_aes256.pdf");
        assert_eq!((locked.verdict, locked.variants.len()), ("clean", 0));
    }

    // Videos: with feature `video`, a poster frame as variants and the
    // duration, size and codecs; without, kept with no variants.
    let mp4 = by_name(&reports, "generated_testsrc_320x240_2s_h264_aac.mp4");
    let webm = by_name(&reports, "generated_testsrc2_256x144_2s_vp9_opus.webm");
    assert_eq!(
        (mp4.sniffed.as_deref(), webm.sniffed.as_deref()),
        (Some("video/mp4"), Some("video/webm"))
    );
    #[cfg(feature = "video")]
    {
        assert_eq!(dims(mp4), [("thumb", 256, 192), ("medium", 320, 240)]);
        assert_eq!(dims(webm), [("thumb", 256, 144), ("medium", 256, 144)]);
        let line = serde_json::to_value(mp4).unwrap();
        assert_eq!(line["media"]["kind"], "video");
        assert_eq!(line["media"]["duration_ms"], 2000);
        assert_eq!(line["media"]["video_codec"], "h264");
        assert_eq!(line["media"]["audio_codec"], "aac");
        let line = serde_json::to_value(webm).unwrap();
        assert_eq!(line["media"]["duration_ms"], 2008);
        assert_eq!(
            (
                line["media"]["video_codec"].as_str(),
                line["media"]["audio_codec"].as_str()
            ),
            (Some("vp9"), Some("opus"))
        );
    }
    #[cfg(not(feature = "video"))]
    for v in [mp4, webm] {
        assert_eq!(
            (v.verdict, v.variants.len(), v.media.is_none()),
            ("clean", 0, true)
        );
    }

    // HEIC and AVIF (feature `heif`) and JPEG XL (feature `jxl`): decoded
    // to variants, or rejected as unsupported naming the feature.
    let heic = by_name(&reports, "photo_example_1280x854.heic");
    let avif = by_name(&reports, "photo_example_800x533.avif");
    let jxl = by_name(&reports, "derived_hopper_lossy_d1.jxl");
    #[cfg(feature = "heif")]
    {
        assert_eq!(dims(heic), [("thumb", 256, 171), ("medium", 1024, 683)]);
        assert_eq!(
            heic.image.as_ref().map(|i| (i.width, i.height)),
            Some((1280, 854))
        );
        assert_eq!(dims(avif), [("thumb", 256, 171), ("medium", 800, 533)]);
    }
    #[cfg(not(feature = "heif"))]
    for r in [heic, avif] {
        assert_eq!(r.verdict, "rejected");
        assert!(r.reason.as_deref().unwrap().contains("heif"), "{r:?}");
    }
    #[cfg(feature = "jxl")]
    assert_eq!(dims(jxl), [("thumb", 128, 128), ("medium", 128, 128)]);
    #[cfg(not(feature = "jxl"))]
    {
        assert_eq!(jxl.verdict, "rejected");
        assert!(jxl.reason.as_deref().unwrap().contains("jxl"), "{jxl:?}");
    }

    // The served URL of an image returns the medium variant.
    let got = reqwest::get(rot.url.clone().unwrap()).await.unwrap();
    assert_eq!(got.headers()["content-type"], "image/webp");
    assert_eq!(
        got.bytes().await.unwrap().len() as u64,
        rot.variants[1].bytes
    );

    // EICAR: quarantined, no variants, no URL, gone from uploads.
    let inf = by_name(&reports, "eicar.pdf");
    assert_eq!(
        (inf.verdict, inf.signature.as_deref()),
        ("infected", Some(upload_scan::TEST_MARKER_SIGNATURE))
    );
    assert!(inf.variants.is_empty() && inf.url.is_none());
    let ikey = ObjectKey::new(inf.key.clone().unwrap()).unwrap();
    assert!(world.uploads.head(&ikey).await.is_err());
    assert_eq!(
        world.quarantine.get(&ikey).await.unwrap().body.as_ref(),
        eicar.as_slice()
    );

    // A .jpg whose bytes are not an image: uploaded (the declared type was
    // allowed), then rejected by the magic-byte check; the original stays.
    let fake = by_name(&reports, "not-an-image.jpg");
    assert_eq!((fake.verdict, fake.sniffed.as_deref()), ("rejected", None));
    assert!(
        world
            .uploads
            .head(&ObjectKey::new(fake.key.clone().unwrap()).unwrap())
            .await
            .is_ok()
    );

    // A .txt is refused before any upload: no key, nothing stored.
    let txt = by_name(&reports, "notes.txt");
    assert_eq!(
        (txt.verdict, txt.key.as_deref(), txt.upload),
        ("rejected", None, None)
    );
    assert!(txt.reason.as_deref().unwrap().contains("text/plain"));

    assert_eq!(
        world.uploads.len(),
        15,
        "14 bundled (rejected originals stay) + fake jpg; EICAR moved, txt never uploaded"
    );
    assert_eq!(world.multipart.uploads_in_progress(), 0);
    assert!(world.queue.is_empty(), "every message handled and deleted");
}
