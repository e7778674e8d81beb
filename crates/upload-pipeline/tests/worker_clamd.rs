//! The worker with the real clamd client. The daemon tests are `#[ignore]`d
//! in plain `cargo test`; `scripts/test.sh` starts clamd, sets
//! `UPLOAD_SDK_CLAMD_TCP` and runs them with `--include-ignored` (a missing
//! daemon then fails them).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{sample, world};
use upload_core::{Bytes, Storage};
use upload_pipeline::Outcome;
use upload_scan::{ClamdAddress, ClamdConfig, ClamdScanner, eicar};

fn clamd() -> Arc<ClamdScanner> {
    let addr = std::env::var("UPLOAD_SDK_CLAMD_TCP")
        .expect("UPLOAD_SDK_CLAMD_TCP is not set: run scripts/test.sh, which starts clamd");
    Arc::new(ClamdScanner::new(ClamdConfig::new(ClamdAddress::Tcp(addr))))
}

#[tokio::test]
#[ignore = "needs clamd: run scripts/test.sh"]
async fn infected_upload_is_quarantined_with_tags_and_never_processed() {
    let w = world(clamd());
    // JPEG magic bytes, so the type check passes and only the scanner can
    // stop it.
    let body = Bytes::from([b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00".as_slice(), &eicar()].concat());
    let bad = w
        .upload("uploads/u/cat.jpg", body.clone(), "image/jpeg")
        .await;
    let good = w
        .upload(
            "uploads/u/hopper.jpg",
            sample("testdata/hopper.jpg"),
            "image/jpeg",
        )
        .await;
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!((s.infected, s.clean, s.failed), (1, 1, 0));

    let m = w.manifest(&bad).await;
    assert_eq!(m.verdict, Outcome::Infected);
    assert_eq!(
        m.signature.as_deref(),
        Some("Eicar-Test-Signature.UNOFFICIAL")
    );
    assert!(m.variants.is_empty());
    let q = m.quarantine.unwrap();
    assert_eq!(w.quarantine.get(&q.key).await.unwrap().body, body);
    let tags = w.quarantine.get_tags(&q.key).await.unwrap();
    assert_eq!(tags.get("scan-status"), Some("INFECTED"));
    assert_eq!(
        tags.get("scan-signature"),
        Some("Eicar-Test-Signature.UNOFFICIAL")
    );
    assert!(tags.get("scanned-at").is_some_and(|t| t.ends_with('Z')));
    assert!(w.uploads.head(&bad).await.is_err(), "gone from uploads");
    let processed: Vec<String> = w
        .processed
        .list("uploads/u/cat.jpg/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.into_string())
        .collect();
    assert_eq!(
        processed,
        ["uploads/u/cat.jpg/manifest.json"],
        "no variant ever reaches the processed bucket"
    );

    assert_eq!(w.manifest(&good).await.variants.len(), 2);
    assert_eq!(
        w.uploads.get_tags(&good).await.unwrap().get("scan-status"),
        Some("CLEAN")
    );
}

/// clamd down: a scanner error, the message goes back to the queue, the
/// original stays untouched (no daemon needed: nothing listens there).
#[tokio::test(start_paused = true)]
async fn clamd_stopped_sends_the_message_back() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = Arc::new(ClamdScanner::new(ClamdConfig::new(ClamdAddress::Tcp(
        format!("127.0.0.1:{port}"),
    ))));
    let w = world(dead);
    let k = w
        .upload(
            "uploads/u/a.jpg",
            sample("testdata/hopper.jpg"),
            "image/jpeg",
        )
        .await;
    let s = w.worker.run_until_idle().await.unwrap();
    assert_eq!((s.failed, s.clean, s.infected, s.unscannable), (1, 0, 0, 0));
    assert_eq!(w.queue.len(), 1, "message back on the queue");
    assert!(w.uploads.head(&k).await.is_ok());
    assert!(w.uploads.get_tags(&k).await.unwrap().is_empty());
    assert!(w.processed.is_empty() && w.quarantine.is_empty());
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(
        w.worker.run_until_idle().await.unwrap().failed,
        1,
        "redelivered and retried"
    );
}
