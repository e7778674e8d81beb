//! `UploadPolicy::media` accepts what the sniffer finds in real files of
//! every media type it names, and refuses the types a browser would run.

use std::path::PathBuf;

use upload_core::sniff::sniff;
use upload_core::{MEDIA_CONTENT_TYPES, UploadPolicy};

fn sample(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// An ISO BMFF `ftyp` box with `major` and the compatible brands.
fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
    let size = 16 + 4 * compatible.len();
    let mut b = Vec::with_capacity(size + 16);
    b.extend_from_slice(&(size as u32).to_be_bytes());
    b.extend_from_slice(b"ftyp");
    b.extend_from_slice(major);
    b.extend_from_slice(&0u32.to_be_bytes());
    for c in compatible {
        b.extend_from_slice(*c);
    }
    b.extend_from_slice(&[0, 0, 0, 8, b'f', b'r', b'e', b'e']);
    b
}

/// The first 300 bytes of a WebM as ffmpeg 5.1 writes it: the EBML
/// header (DocType "webm"), a Segment ID, then zeros.
fn webm_head() -> Vec<u8> {
    let mut b = vec![
        0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01, 0x42, 0xF2,
        0x81, 0x04, 0x42, 0xF3, 0x81, 0x08, 0x42, 0x82, 0x84, b'w', b'e', b'b', b'm', 0x42, 0x87,
        0x81, 0x02, 0x42, 0x85, 0x81, 0x02, 0x18, 0x53, 0x80, 0x67,
    ];
    b.resize(300, 0);
    b
}

#[test]
fn media_policy_accepts_the_sniffed_type_of_every_real_sample() {
    let policy = UploadPolicy::media(1 << 30).unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (sample("photos/photo_kleiber_6028x3391.jpg"), "image/jpeg"),
        (sample("photos/transparent.png"), "image/png"),
        (sample("testdata/libwebp_test.webp"), "image/webp"),
        (sample("testdata/fire.gif"), "image/gif"),
        (sample("testdata/photo_example_1280x854.heic"), "image/heic"),
        (sample("testdata/photo_example_800x533.avif"), "image/avif"),
        (sample("testdata/derived_hopper_lossy_d1.jxl"), "image/jxl"),
        (sample("testdata/exiftool_JXL.jxl"), "image/jxl"),
        (sample("photos/exiftool_PDF.pdf"), "application/pdf"),
        (ftyp(b"isom", &[b"isom", b"mp41"]), "video/mp4"),
        (ftyp(b"qt  ", &[b"qt  "]), "video/quicktime"),
        (
            // The EBML header ffmpeg writes (DocType "webm"), then the start
            // of a Segment: a sniffer needs 257 bytes to call it WebM.
            webm_head(),
            "video/webm",
        ),
    ];
    let mut seen = Vec::new();
    for (bytes, want) in &cases {
        let got = sniff(bytes)
            .unwrap_or_else(|e| panic!("{want}: {e:?}"))
            .mime;
        assert_eq!(got, *want);
        assert!(policy.allows(got), "{got} refused by the media policy");
        seen.push(got);
    }
    // Every type the policy names is one the sniffer produces (no dead
    // entry), except image/heif, which a HEIF with neither a `heic` nor
    // an `avif` brand sniffs as.
    for t in MEDIA_CONTENT_TYPES {
        assert!(seen.contains(&t) || t == "image/heif", "{t} never sniffed");
    }
    assert_eq!(policy.allowed_content_types(), MEDIA_CONTENT_TYPES);
}

#[test]
fn media_policy_refuses_what_a_browser_would_run_and_archives() {
    let policy = UploadPolicy::media(1 << 30).unwrap();
    for (file, mime) in [
        ("testdata/exiftool_XMP.svg", "image/svg+xml"),
        ("testdata/exiftool_ZIP.zip", "application/zip"),
        ("testdata/exiftool_OOXML.docx", ""),
    ] {
        let bytes = sample(file);
        if let Ok(s) = sniff(&bytes) {
            assert!(
                !policy.allows(s.mime),
                "{file} sniffed {} and allowed",
                s.mime
            );
        }
        if !mime.is_empty() {
            assert!(!policy.allows(mime), "{mime} allowed");
        }
    }
    for declared in [
        "text/html",
        "application/javascript",
        "image/svg+xml",
        "application/x-msdownload",
    ] {
        assert!(!policy.allows(declared), "{declared} allowed");
        assert!(policy.check_content_type(declared).is_err());
    }
    assert!(UploadPolicy::media(0).is_err());
}
