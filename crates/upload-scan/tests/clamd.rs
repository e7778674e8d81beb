//! ClamdScanner against a real clamd started by `scripts/test.sh`
//! (`scripts/clamd.sh`), which sets:
//! - `UPLOAD_SDK_CLAMD_TCP`: `127.0.0.1:PORT`,
//! - `UPLOAD_SDK_CLAMD_SOCKET`: the Unix socket path,
//! - `UPLOAD_SDK_CLAMD_STREAM_MAX`: the daemon's `StreamMaxLength` in bytes.
//!
//! These tests are `#[ignore]`d in plain `cargo test` (no daemon there);
//! the test script runs them with `--include-ignored`, and then a missing
//! daemon or variable fails them: they never skip.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use upload_core::ByteStream;
use upload_scan::{
    ClamdAddress, ClamdConfig, ClamdScanner, Error, Scanner, UnscannableReason, Verdict, eicar,
};

const EICAR_NAME: &str = "Eicar-Test-Signature.UNOFFICIAL";

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run scripts/test.sh, which starts clamd"))
}

fn stream_max() -> u64 {
    env("UPLOAD_SDK_CLAMD_STREAM_MAX")
        .parse()
        .expect("a byte count")
}

fn tcp() -> ClamdScanner {
    ClamdScanner::new(
        ClamdConfig::new(ClamdAddress::Tcp(env("UPLOAD_SDK_CLAMD_TCP")))
            .with_stream_max_length(stream_max()),
    )
}

fn unix() -> ClamdScanner {
    ClamdScanner::new(
        ClamdConfig::new(ClamdAddress::Unix(PathBuf::from(env(
            "UPLOAD_SDK_CLAMD_SOCKET",
        ))))
        .with_stream_max_length(stream_max()),
    )
}

fn stream_of(data: Bytes, chunk: usize) -> ByteStream {
    let parts: Vec<_> = (0..data.len())
        .step_by(chunk)
        .map(|s| Ok(data.slice(s..(s + chunk).min(data.len()))))
        .collect();
    futures::stream::iter(parts).boxed()
}

async fn scan(s: &ClamdScanner, data: impl Into<Bytes>) -> Verdict {
    s.scan(stream_of(data.into(), 64 * 1024))
        .await
        .expect("scan reaches a verdict")
}

fn infected(v: &Verdict, name: &str) -> bool {
    matches!(v, Verdict::Infected { signature } if signature == name)
}

/// Pseudo-random bytes (xorshift), incompressible and unlike any signature.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A ZIP archive with `members` stored (no compression).
fn zip_stored(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let crc = crc32fast::hash(data);
        let offset = out.len() as u32;
        let len = data.len() as u32;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method 0, time, date
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&len.to_le_bytes());
        central.extend_from_slice(&len.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]); // extra, comment, disk, attrs
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn tar_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut t = tar::Builder::new(gz);
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, *data).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
#[ignore = "needs clamd: run scripts/test.sh"]
async fn clamd_passes_the_scanner_suite_over_tcp_and_unix() {
    for s in [tcp(), unix()] {
        s.ping().await.expect("PING answers PONG");
        let version = s.version().await.unwrap();
        assert!(version.starts_with("ClamAV "), "{version}");
        upload_scan::testkit::run_all(&s).await;
    }
}

#[tokio::test]
#[ignore = "needs clamd: run scripts/test.sh"]
async fn detects_eicar_plain_zipped_and_tarred() {
    let s = tcp();
    let e = eicar();
    assert!(infected(&scan(&s, e.clone()).await, EICAR_NAME));
    let pdf = [b"%PDF-1.4\n".as_slice(), &e, b"\n%%EOF\n"].concat();
    assert!(infected(&scan(&s, pdf).await, EICAR_NAME));
    let zip = zip_stored(&[("readme.txt", b"hello"), ("eicar.com", &e)]);
    assert!(infected(&scan(&s, zip).await, EICAR_NAME), "inside a zip");
    let tgz = tar_gz(&[("docs/readme.txt", b"hello"), ("docs/eicar.com", &e)]);
    assert!(
        infected(&scan(&s, tgz).await, EICAR_NAME),
        "inside a tar.gz"
    );
    // The project's own test signature.
    let marker = b"some bytes UPLOAD-SDK-TEST-MALWARE-7f3a more bytes";
    assert!(infected(
        &scan(&s, marker.to_vec()).await,
        "UploadSdk.Test.Marker.UNOFFICIAL"
    ));
}

#[tokio::test]
#[ignore = "needs clamd: run scripts/test.sh"]
async fn finds_eicar_member_past_20_mib_of_other_data() {
    let filler = noise(21 * 1024 * 1024, 7);
    let zip = zip_stored(&[("video.bin", &filler), ("tools/eicar.com", &eicar())]);
    assert!(
        zip.len() as u64 <= stream_max(),
        "the test archive must fit the daemon's limit"
    );
    assert!(infected(&scan(&tcp(), zip).await, EICAR_NAME));
}

#[tokio::test]
#[ignore = "needs clamd: run scripts/test.sh"]
async fn a_file_that_only_mentions_eicar_is_clean() {
    let text = b"This note explains the EICAR test file and the EICAR-STANDARD-ANTIVIRUS-TEST-FILE name; it is harmless.";
    assert_eq!(scan(&tcp(), text.to_vec()).await, Verdict::Clean);
    // Half of the string is not the string.
    assert_eq!(scan(&tcp(), eicar().slice(..40)).await, Verdict::Clean);
}

#[tokio::test]
#[ignore = "needs clamd: run scripts/test.sh"]
async fn over_stream_max_length_is_unscannable_never_clean() {
    let max = stream_max();
    let big = Bytes::from(noise(max as usize + 1024 * 1024, 3));
    for (name, addr) in [
        ("tcp", ClamdAddress::Tcp(env("UPLOAD_SDK_CLAMD_TCP"))),
        (
            "unix",
            ClamdAddress::Unix(PathBuf::from(env("UPLOAD_SDK_CLAMD_SOCKET"))),
        ),
    ] {
        // The client knows the limit: it stops before sending too much.
        let knows = ClamdScanner::new(ClamdConfig::new(addr.clone()).with_stream_max_length(max));
        let v = knows
            .scan(stream_of(big.clone(), 256 * 1024))
            .await
            .unwrap();
        assert_eq!(
            v,
            Verdict::Unscannable {
                reason: UnscannableReason::TooLarge { limit: max }
            },
            "{name}"
        );
        // The client believes in a larger limit: clamd refuses mid-stream
        // and closes; the verdict is still unscannable, never clean.
        let unaware = ClamdScanner::new(ClamdConfig::new(addr).with_stream_max_length(u64::MAX));
        let v = unaware
            .scan(stream_of(big.clone(), 256 * 1024))
            .await
            .unwrap();
        assert!(
            matches!(
                v,
                Verdict::Unscannable {
                    reason: UnscannableReason::TooLarge { .. }
                }
            ),
            "{name}: {v:?}"
        );
    }
}

#[tokio::test]
#[ignore = "needs clamd: run scripts/test.sh"]
async fn thirty_two_parallel_scans_are_all_correct() {
    let s = tcp();
    let jobs = (0..32).map(|i| {
        let s = s.clone();
        async move {
            let mut data = noise(200_000 + i * 1000, i as u64 + 1);
            if i % 2 == 0 {
                data.extend_from_slice(&eicar());
            }
            (i, scan(&s, data).await)
        }
    });
    let results = futures::future::join_all(jobs).await;
    for (i, v) in results {
        if i % 2 == 0 {
            assert!(infected(&v, EICAR_NAME), "{i}: {v:?}");
        } else {
            assert_eq!(v, Verdict::Clean, "{i}");
        }
    }
}

#[tokio::test]
#[ignore = "needs clamd: run scripts/test.sh"]
async fn scans_a_file_from_disk_without_loading_it() {
    let mut f = tempfile_in_target();
    f.1.write_all(&noise(3 * 1024 * 1024, 11)).unwrap();
    f.1.write_all(&eicar()).unwrap();
    drop(f.1);
    let file = tokio::fs::File::open(&f.0).await.unwrap();
    assert!(infected(
        &tcp().scan_reader(file).await.unwrap(),
        EICAR_NAME
    ));
    std::fs::remove_file(&f.0).unwrap();
}

fn tempfile_in_target() -> (PathBuf, std::fs::File) {
    let p = std::env::temp_dir().join(format!("upload-scan-test-{}", std::process::id()));
    let f = std::fs::File::create(&p).unwrap();
    (p, f)
}

/// A known size over the limit is refused before connecting: no daemon is
/// needed to say so.
#[tokio::test]
async fn a_known_size_over_the_limit_is_refused_before_connecting() {
    let s = ClamdScanner::new(
        ClamdConfig::new(ClamdAddress::Tcp("127.0.0.1:9".into())).with_stream_max_length(1000),
    );
    let v = s
        .scan_sized(stream_of(Bytes::from(vec![0u8; 1001]), 100), Some(1001))
        .await
        .unwrap();
    assert_eq!(
        v,
        Verdict::Unscannable {
            reason: UnscannableReason::TooLarge { limit: 1000 }
        }
    );
    let err = s
        .scan_sized(stream_of(Bytes::from(vec![0u8; 10]), 100), Some(10))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ScannerUnavailable { .. }),
        "within the limit it connects: {err:?}"
    );
}

/// No daemon there: a scanner error (retry later), never a verdict.
#[tokio::test]
async fn a_stopped_clamd_is_an_error_not_a_verdict() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for addr in [
        ClamdAddress::Tcp(format!("127.0.0.1:{port}")),
        ClamdAddress::Unix(std::env::temp_dir().join("no-such-clamd.sock")),
    ] {
        let s = ClamdScanner::new(
            ClamdConfig::new(addr.clone()).with_connect_timeout(Duration::from_secs(2)),
        );
        let err = s.scan(stream_of(eicar(), 10)).await.expect_err("no daemon");
        assert!(
            matches!(err, Error::ScannerUnavailable { .. }),
            "{addr}: {err:?}"
        );
        assert!(err.is_transient());
        assert!(matches!(
            s.ping().await,
            Err(Error::ScannerUnavailable { .. })
        ));
    }
}
