//! The [`Scanner`] conformance suite (feature `testkit`).
//!
//! Every scanner, in-memory or clamd, must pass [`run_all`], so that the
//! two agree. The checks need the scanner to detect the EICAR test file as
//! ClamAV's official database does (`Win.Test.EICAR_HDB-1`: the exact
//! 68-byte file, as the object or as an archive member), the project's
//! [`test_marker`] anywhere (the project's clamd test database,
//! `scripts/clamd.sh`), to unpack ZIP and gzip, and to report content past
//! its archive limits, given as [`ScanLimits`], as
//! [`UnscannableReason::LimitsExceeded`].

use bytes::Bytes;
use futures::StreamExt;
use upload_core::ByteStream;

use crate::archive::ScanLimits;
use crate::fixtures::{self, Packing};
use crate::memory::{TEST_MARKER_SIGNATURE, eicar, test_marker};
use crate::verdict::{ExceededLimit, Scanner, UnscannableReason, Verdict};

fn stream_of(data: Bytes, chunk: usize) -> ByteStream {
    let parts: Vec<_> = (0..data.len())
        .step_by(chunk.max(1))
        .map(|s| Ok(data.slice(s..(s + chunk).min(data.len()))))
        .collect();
    futures::stream::iter(parts).boxed()
}

/// Runs every check below; `limits` are the scanner's archive limits
/// (for clamd, its `clamd.conf` values).
pub async fn run_all(s: &dyn Scanner, limits: &ScanLimits) {
    clean_content(s).await;
    detects_eicar(s).await;
    detects_eicar_across_chunks(s).await;
    eicar_only_as_the_whole_file(s).await;
    detects_the_test_marker_anywhere(s).await;
    looks_into_zip_and_gzip(s).await;
    nesting_past_max_recursion_is_unscannable(s, limits).await;
    more_files_than_max_files_is_unscannable(s, limits).await;
    more_bytes_than_max_scan_size_is_unscannable(s, limits).await;
    an_encrypted_member_is_unscannable(s).await;
}

async fn verdict(s: &dyn Scanner, data: Vec<u8>, what: &str) -> Verdict {
    s.scan(stream_of(Bytes::from(data), 256 * 1024))
        .await
        .unwrap_or_else(|e| panic!("scan {what}: {e}"))
}

fn is_eicar(v: &Verdict) -> bool {
    matches!(v, Verdict::Infected { signature } if signature.to_ascii_uppercase().contains("EICAR"))
}

fn limits_exceeded(limit: ExceededLimit) -> Verdict {
    Verdict::Unscannable {
        reason: UnscannableReason::LimitsExceeded { limit },
    }
}

/// The start of a JPEG (SOI, APP0 JFIF): what an "infected image" fixture
/// begins with.
const JPEG_START: &[u8] = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00";

/// EICAR matches only as the whole file (`Win.Test.EICAR_HDB-1`): with
/// one byte more, after a prefix, or at offset 20 MiB of a larger file it
/// is clean; so is a text that names it.
pub async fn eicar_only_as_the_whole_file(s: &dyn Scanner) {
    let e = eicar();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("EICAR and a newline", [&e[..], b"\n"].concat()),
        ("a prefix and EICAR", [b"x".as_slice(), &e].concat()),
        ("EICAR after a JPEG header", [JPEG_START, &e].concat()),
        ("the first 40 bytes of EICAR", e[..40].to_vec()),
        (
            "EICAR at offset 20 MiB",
            [
                fixtures::noise(20 << 20, 21),
                e.to_vec(),
                fixtures::noise(4096, 22),
            ]
            .concat(),
        ),
        (
            "a text naming it",
            b"A note on the EICAR-STANDARD-ANTIVIRUS-TEST-FILE: harmless.".to_vec(),
        ),
    ];
    for (what, data) in cases {
        assert_eq!(verdict(s, data, what).await, Verdict::Clean, "{what}");
    }
}

/// The project's test marker is found anywhere: after a JPEG header, in
/// the middle of 3 MiB, split across chunks.
pub async fn detects_the_test_marker_anywhere(s: &dyn Scanner) {
    let m = test_marker();
    let image = [JPEG_START, &m, b"\xFF\xD9"].concat();
    let big = [
        fixtures::noise(3 << 20, 5),
        m.to_vec(),
        fixtures::noise(1000, 6),
    ]
    .concat();
    for (what, data) in [("an infected image", image), ("3 MiB", big)] {
        match verdict(s, data, what).await {
            Verdict::Infected { signature } => assert!(
                signature.starts_with(TEST_MARKER_SIGNATURE),
                "{what}: {signature}"
            ),
            other => panic!("{what}: test marker not detected: {other:?}"),
        }
    }
    let split = s
        .scan(stream_of(Bytes::from([b"ab".as_slice(), &m].concat()), 3))
        .await
        .expect("scan split marker");
    assert!(matches!(split, Verdict::Infected { .. }), "{split:?}");
}

/// EICAR as a member of a ZIP (stored or deflated, nested two deep,
/// appended to a JPEG) or gzip'd is infected.
pub async fn looks_into_zip_and_gzip(s: &dyn Scanner) {
    let e = eicar();
    let stored = fixtures::zip(
        &[("readme.txt", b"hello"), ("eicar.com", &e)],
        Packing::Stored,
    )
    .expect("zip");
    let deflated = fixtures::zip(
        &[("readme.txt", b"hello"), ("eicar.com", &e)],
        Packing::Deflated,
    )
    .expect("zip");
    let nested = fixtures::nested_zip(&e, 2).expect("zip");
    let appended = [
        JPEG_START,
        &fixtures::noise(5000, 9),
        b"\xFF\xD9",
        &deflated,
    ]
    .concat();
    let gz = fixtures::gzip(&e).expect("gzip");
    let jpeg = [JPEG_START, &fixtures::noise(5000, 9), b"\xFF\xD9"].concat();
    // Found by an attacker-side review: the archive followed by a newline,
    // inserted in the middle of the image, or EICAR in a member whose name
    // ends with `/`.
    let appended_then_newline = [&jpeg[..], &deflated, b"\n"].concat();
    let in_the_middle = [&jpeg[..], &deflated, &jpeg[..]].concat();
    let directory_named = fixtures::zip(&[("evil/", &e)], Packing::Deflated).expect("zip");
    for (what, data) in [
        ("stored zip", stored),
        ("deflated zip", deflated.clone()),
        ("zip in a zip", nested),
        ("zip appended to a jpeg", appended),
        (
            "zip appended to a jpeg, then a newline",
            appended_then_newline,
        ),
        ("zip in the middle of a jpeg", in_the_middle),
        ("eicar in a member named evil/", directory_named),
        ("gzip", gz),
    ] {
        let v = verdict(s, data, what).await;
        assert!(is_eicar(&v), "{what}: {v:?}");
    }
    let clean = fixtures::zip(&[("readme.txt", b"hello")], Packing::Deflated).expect("zip");
    assert_eq!(verdict(s, clean, "clean zip").await, Verdict::Clean);
}

/// EICAR inside `max_recursion - 1` nested ZIPs is infected; inside
/// `max_recursion` (alone, or appended to a JPEG) it was never scanned:
/// [`ExceededLimit::MaxRecursion`], never clean.
pub async fn nesting_past_max_recursion_is_unscannable(s: &dyn Scanner, limits: &ScanLimits) {
    let depth = limits.max_recursion;
    let within = fixtures::nested_zip(&eicar(), depth - 1).expect("zip");
    let v = verdict(s, within, "within MaxRecursion").await;
    assert!(is_eicar(&v), "EICAR at depth {}: {v:?}", depth - 1);
    let past = fixtures::nested_zip(&eicar(), depth).expect("zip");
    let image = [JPEG_START, &fixtures::noise(5000, 10), b"\xFF\xD9", &past].concat();
    for (what, data) in [("nested", past), ("nested after a jpeg", image)] {
        assert_eq!(
            verdict(s, data, what).await,
            limits_exceeded(ExceededLimit::MaxRecursion),
            "{what}: EICAR at depth {depth}"
        );
    }
}

/// A ZIP of `max_files - 2` members (with the archive itself, one file
/// under the limit) is clean; of `max_files` members it is not fully
/// scanned: [`ExceededLimit::MaxFiles`], even when EICAR is the member past
/// the limit. As in clamd, the member that brings the count past the limit
/// is still scanned: EICAR there is found.
pub async fn more_files_than_max_files_is_unscannable(s: &dyn Scanner, limits: &ScanLimits) {
    let n = usize::try_from(limits.max_files).expect("max_files fits in usize");
    let under = fixtures::zip_with_files(n - 2, None).expect("zip");
    assert_eq!(verdict(s, under, "under MaxFiles").await, Verdict::Clean);
    let over = fixtures::zip_with_files(n, None).expect("zip");
    assert_eq!(
        verdict(s, over, "MaxFiles").await,
        limits_exceeded(ExceededLimit::MaxFiles)
    );
    // The member that brings the count past the limit is still scanned.
    let last = fixtures::zip_with_files(n - 1, Some(&eicar())).expect("zip");
    let v = verdict(s, last, "EICAR as the member reaching MaxFiles").await;
    assert!(is_eicar(&v), "{v:?}");
    let hidden = fixtures::zip_with_files(n, Some(&eicar())).expect("zip");
    assert_eq!(
        verdict(s, hidden, "EICAR past MaxFiles").await,
        limits_exceeded(ExceededLimit::MaxFiles)
    );
}

/// Members of `max_file_size - 1` zero bytes, more of them than fit in
/// `max_scan_size`: [`ExceededLimit::MaxScanSize`].
pub async fn more_bytes_than_max_scan_size_is_unscannable(s: &dyn Scanner, limits: &ScanLimits) {
    let member = limits.max_file_size - 1;
    let count = limits.max_scan_size / member + 1;
    let zip = fixtures::zip_of_zeros(
        usize::try_from(count).expect("count"),
        usize::try_from(member).expect("size"),
    )
    .expect("zip");
    assert_eq!(
        verdict(s, zip, "MaxScanSize").await,
        limits_exceeded(ExceededLimit::MaxScanSize),
        "{count} members of {member} bytes"
    );
}

/// A member with the "encrypted" flag cannot be looked into:
/// [`UnscannableReason::Encrypted`].
pub async fn an_encrypted_member_is_unscannable(s: &dyn Scanner) {
    let zip = fixtures::encrypted_zip(&eicar()).expect("zip");
    assert_eq!(
        verdict(s, zip, "encrypted member").await,
        Verdict::Unscannable {
            reason: UnscannableReason::Encrypted
        }
    );
}

/// Ordinary bytes, and an empty stream, are clean.
pub async fn clean_content(s: &dyn Scanner) {
    let text = Bytes::from_static(b"just a harmless text file\n");
    assert_eq!(
        s.scan(stream_of(text, 7)).await.expect("scan text"),
        Verdict::Clean
    );
    assert_eq!(
        s.scan(stream_of(Bytes::new(), 1))
            .await
            .expect("scan empty"),
        Verdict::Clean,
        "an empty stream is clean"
    );
    let big: Bytes = (0..1_000_000u32)
        .map(|i| (i % 253) as u8)
        .collect::<Vec<_>>()
        .into();
    assert_eq!(
        s.scan(stream_of(big, 65_536)).await.expect("scan 1 MB"),
        Verdict::Clean
    );
}

/// The EICAR file alone is infected, with a non-empty signature name that
/// mentions EICAR.
pub async fn detects_eicar(s: &dyn Scanner) {
    match s.scan(stream_of(eicar(), 4096)).await.expect("scan eicar") {
        Verdict::Infected { signature } => {
            assert!(
                signature.to_ascii_uppercase().contains("EICAR"),
                "{signature}"
            );
        }
        other => panic!("EICAR not detected: {other:?}"),
    }
}

/// The EICAR file split into 1-byte and 5-byte chunks is still found.
pub async fn detects_eicar_across_chunks(s: &dyn Scanner) {
    for chunk in [1, 5] {
        let v = s
            .scan(stream_of(eicar(), chunk))
            .await
            .expect("scan split eicar");
        assert!(
            matches!(v, Verdict::Infected { .. }),
            "chunk {chunk}: {v:?}"
        );
    }
}
