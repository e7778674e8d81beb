//! The client engine against moto's S3 through `S3Storage`: a killed
//! upload resumed from its state file and ListParts, then the sweeper.
//!
//! `#[ignore]`d in plain `cargo test`; `scripts/test.sh` starts moto, sets
//! `UPLOAD_SDK_MOTO_ENDPOINT` and runs it. Without it the test fails, never
//! skips.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::config::Credentials;
use upload_core::s3::{AwsSettings, S3Storage};
use upload_core::{MultipartStore, ObjectKey, PutOptions, Storage};
use upload_multipart::{MultipartUploader, ResumeState, UploadOptions, abort_stale_uploads};

const MIB: usize = 1024 * 1024;

async fn moto_bucket() -> S3Storage {
    let endpoint = std::env::var("UPLOAD_SDK_MOTO_ENDPOINT")
        .expect("UPLOAD_SDK_MOTO_ENDPOINT is not set: run scripts/test.sh, which starts moto");
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    let name = format!(
        "engine-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let s = S3Storage::new(AwsSettings::local(endpoint).s3_client(&sdk), name).unwrap();
    s.create_bucket().await.expect("create bucket on moto");
    s
}

#[tokio::test]
#[ignore = "needs moto: run scripts/test.sh"]
async fn killed_upload_resumes_on_moto_and_the_sweeper_aborts_leftovers() {
    let s3 = Arc::new(moto_bucket().await);
    let data: Vec<u8> = (0..17 * MIB).map(|i| (i * 31 % 251) as u8).collect();
    let key = ObjectKey::new("uploads/engine/big.bin").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let options = UploadOptions::default()
        .with_part_size(5 * MIB as u64)
        .with_concurrency(1)
        .with_put_options(PutOptions::default().with_content_type("application/octet-stream"));

    let uploader = MultipartUploader::new(s3.clone(), options.clone());
    common::interrupt_after(&uploader, &key, &data, &state, 2).await;
    let saved = ResumeState::load(&state).unwrap();
    assert_eq!(saved.parts.len(), 2);
    let listed = s3.list_parts(&key, &saved.upload_id).await.unwrap();
    assert_eq!(listed.len(), 2, "moto holds the two parts");

    let mut sent_by_resume = 0;
    let meta = MultipartUploader::new(s3.clone(), options.with_concurrency(4))
        .upload(
            &key,
            &data[..],
            data.len() as u64,
            Some(&state),
            |p| sent_by_resume = p.bytes_sent,
            std::future::pending(),
        )
        .await
        .unwrap();
    assert_eq!(
        sent_by_resume,
        (data.len() - 10 * MIB) as u64,
        "parts 3 and 4 only"
    );
    assert!(meta.etag.ends_with("-4"), "{}", meta.etag);
    assert_eq!(s3.get(&key).await.unwrap().body.as_ref(), &data[..]);
    assert!(!state.exists());

    // An abandoned upload; the sweeper aborts it (moto dates every upload
    // 2010, so "older than a day" holds).
    let left = ObjectKey::new("uploads/engine/abandoned.bin").unwrap();
    let id = s3
        .create_multipart_upload(&left, PutOptions::default())
        .await
        .unwrap();
    let r = abort_stale_uploads(
        s3.as_ref(),
        "uploads/",
        Duration::from_secs(86_400),
        SystemTime::now(),
    )
    .await
    .unwrap();
    let aborted: Vec<_> = r.aborted.iter().map(|u| u.upload_id.as_str()).collect();
    assert_eq!(aborted, [id.as_str()]);
    assert!(
        s3.list_multipart_uploads("uploads/")
            .await
            .unwrap()
            .is_empty()
    );
}

/// What the fault proxy did.
#[derive(Debug, Default)]
struct ProxyStats {
    /// Part requests answered 503 SlowDown.
    slowdowns: std::sync::atomic::AtomicU32,
    /// Part requests chosen to be cut after 1 MiB.
    resets: std::sync::atomic::AtomicU32,
    /// Connections actually cut mid-request (the chosen ones, and passing
    /// connections at 24 MiB).
    cut: std::sync::atomic::AtomicU32,
    /// Connections whose first request was an UploadPart.
    part_requests: std::sync::atomic::AtomicU32,
}

/// A TCP proxy in front of the real server that breaks part uploads the
/// ways networks and S3 do. Of the connections whose first request is an
/// UploadPart, one in three gets `503 SlowDown` (S3's XML) and is closed,
/// one in three is cut after 1 MiB of its body is forwarded, and the rest
/// pass; a passing connection is cut after 24 MiB so that connections keep
/// being replaced and faults keep coming.
async fn fault_proxy(upstream: String) -> (String, Arc<ProxyStats>) {
    use std::sync::atomic::Ordering::Relaxed;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(ProxyStats::default());
    let st = stats.clone();
    tokio::spawn(async move {
        let mut n = 0u32;
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            n += 1;
            let (st, upstream) = (st.clone(), upstream.clone());
            tokio::spawn(async move {
                // The head of the first request.
                let mut head = Vec::new();
                let mut buf = [0u8; 8192];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => head.extend_from_slice(&buf[..k]),
                    }
                }
                let first_line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
                let is_part = first_line.starts_with(b"PUT ")
                    && first_line.windows(11).any(|w| w == b"partNumber=");
                if is_part {
                    st.part_requests.fetch_add(1, Relaxed);
                }
                if is_part && n.is_multiple_of(3) {
                    st.slowdowns.fetch_add(1, Relaxed);
                    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>proxy</RequestId></Error>";
                    let resp = format!(
                        "HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = client.write_all(resp.as_bytes()).await;
                    return;
                }
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let cap = if is_part && n % 3 == 1 {
                    st.resets.fetch_add(1, Relaxed);
                    MIB
                } else {
                    24 * MIB
                };
                let up = async {
                    if to_server.write_all(&head).await.is_err() {
                        return;
                    }
                    let mut sent = head.len();
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match from_client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => {
                                if sent + k > cap {
                                    st.cut.fetch_add(1, Relaxed);
                                    return;
                                }
                                if to_server.write_all(&buf[..k]).await.is_err() {
                                    return;
                                }
                                sent += k;
                            }
                        }
                    }
                };
                let down = tokio::io::copy(&mut from_server, &mut to_client);
                // Whichever side ends first ends the connection (a cut
                // drops both halves: the client sees a reset mid-request).
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    });
    (format!("http://{addr}"), stats)
}

/// The engine through the fault proxy to moto: 503 SlowDown, connections
/// cut mid-body and recycled connections; every part arrives, the object
/// is byte for byte the file, and the faults did happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: run scripts/test.sh"]
async fn uploads_through_a_faulty_network_to_moto_arrive_whole() {
    use std::sync::atomic::Ordering::Relaxed;
    let direct = moto_bucket().await;
    let endpoint = std::env::var("UPLOAD_SDK_MOTO_ENDPOINT").unwrap();
    let upstream = endpoint.trim_start_matches("http://").to_owned();
    let (proxy, stats) = fault_proxy(upstream).await;
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    // The SDK's own retries are off: every fault reaches the engine, which
    // must resend the part itself.
    use upload_core::s3::aws_sdk_s3::config::retry::RetryConfig;
    let conf = AwsSettings::local(proxy)
        .s3_client(&sdk)
        .config()
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .build();
    let through = S3Storage::new(
        upload_core::s3::aws_sdk_s3::Client::from_conf(conf),
        Storage::bucket(&direct).to_owned(),
    )
    .unwrap();
    // No two parts alike (xorshift), so a part sent in another's place
    // would show.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let data: Vec<u8> = (0..(42 * MIB + 17))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &data).unwrap();
    let key = ObjectKey::new("uploads/through-faults.bin").unwrap();
    let uploader = MultipartUploader::new(
        Arc::new(through),
        UploadOptions::default()
            .with_part_size(5 * MIB as u64)
            .with_concurrency(4)
            .with_retries(8, Duration::from_millis(20), Duration::from_millis(200)),
    );
    let mut last = None;
    let meta = uploader
        .upload_file(
            &key,
            &path,
            None,
            |p| last = Some(p),
            std::future::pending(),
        )
        .await
        .expect("the upload survives the faults");
    assert_eq!(meta.size, data.len() as u64);
    assert!(meta.etag.ends_with("-9"), "{}", meta.etag);
    let got = direct.get(&key).await.unwrap().body;
    assert!(got[..] == data[..], "the object is the file, byte for byte");
    let p = last.unwrap();
    assert_eq!((p.parts_done, p.parts_total), (9, 9));
    let (slow, resets, cut) = (
        stats.slowdowns.load(Relaxed),
        stats.resets.load(Relaxed),
        stats.cut.load(Relaxed),
    );
    eprintln!("fault proxy: {stats:?}");
    assert!(
        slow >= 1 && resets >= 1 && cut >= resets,
        "faults injected, and every chosen cut happened: {stats:?}"
    );
    // With the SDK's retries off, the engine sent the failed parts again.
    assert!(
        p.bytes_sent >= data.len() as u64 + u64::from(slow + resets) * 2 * MIB as u64,
        "bytes sent {} for {} bytes and {} failed part requests",
        p.bytes_sent,
        data.len(),
        slow + resets
    );
    assert!(
        direct
            .list_multipart_uploads("uploads/")
            .await
            .unwrap()
            .is_empty(),
        "nothing left open"
    );
    direct.delete(&key).await.unwrap();
}
