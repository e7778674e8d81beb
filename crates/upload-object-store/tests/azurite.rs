//! The Storage and MultipartStore conformance suites on Azure Blob Storage,
//! through Azurite (`scripts/azurite.sh`, started by `scripts/test.sh`).
//! Ignored in plain `cargo test`; they fail, not skip, without
//! `UPLOAD_SDK_AZURITE_BLOB_ENDPOINT`.

use upload_core::testkit;
use upload_object_store::ObjectStoreStorage;

/// A fresh container on Azurite as an [`ObjectStoreStorage`].
async fn storage(container: &str) -> ObjectStoreStorage {
    upload_object_store::testkit::azurite_storage(container).await
}

fn run_prefix() -> String {
    format!("run-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Azurite: scripts/test.sh"]
async fn azurite_passes_the_storage_suite() {
    let s = storage("storage-suite").await;
    let prefix = run_prefix();
    testkit::storage::run_all(&s, &prefix).await;
    use upload_core::Storage;
    assert!(
        s.list(&format!("{prefix}/")).await.unwrap().is_empty(),
        "the suite cleans up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Azurite: scripts/test.sh"]
async fn azurite_passes_the_multipart_suite() {
    let s = storage("multipart-suite").await;
    testkit::multipart::run_all(&s, &s, &run_prefix()).await;
}

/// Content type and cache control are kept by Azure itself too, so a
/// reader that bypasses the SDK (a browser on a SAS URL) gets them; user
/// metadata lives in the sidecar only (Azure metadata names must be C#
/// identifiers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Azurite: scripts/test.sh"]
async fn azure_keeps_content_type_natively() {
    use upload_core::{ObjectKey, PutOptions, Storage};
    use upload_object_store::object_store::{Attribute, ObjectStoreExt, path::Path};
    let s = storage("native").await;
    let key = ObjectKey::new(format!("{}/photo.jpg", run_prefix())).unwrap();
    s.put(
        &key,
        bytes::Bytes::from_static(b"jpeg"),
        PutOptions::default()
            .with_content_type("image/jpeg")
            .with_cache_control("no-store")
            .with_metadata("upload-route", "avatar"),
    )
    .await
    .unwrap();
    let raw = s
        .store()
        .get(&Path::parse(key.as_str()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        raw.attributes
            .get(&Attribute::ContentType)
            .map(|v| v.as_ref()),
        Some("image/jpeg")
    );
    assert_eq!(
        raw.attributes
            .get(&Attribute::CacheControl)
            .map(|v| v.as_ref()),
        Some("no-store")
    );
    let head = s.head(&key).await.unwrap();
    assert_eq!(
        head.metadata.get("upload-route").map(String::as_str),
        Some("avatar")
    );
    s.delete(&key).await.unwrap();
}

/// A signed upload URL (SAS) takes a real PUT of bytes from a client that
/// has no credentials; the object then reads back through the adapter
/// with its content type and no tags (unscanned). A tampered signature
/// and an expiry out of range are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Azurite: scripts/test.sh"]
async fn a_signed_upload_url_takes_a_put_from_a_client() {
    use std::time::{Duration, SystemTime};
    use upload_core::{ObjectKey, Storage};
    let s = storage("signed").await;
    let key = ObjectKey::new(format!("{}/uploads/alice/photo.png", run_prefix())).unwrap();
    let signed = s
        .sign_upload(&key, "image/png", Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(signed.method, "PUT");
    assert!(
        signed.url.contains("sp=w") && signed.url.contains("sig="),
        "{}",
        signed.url
    );
    assert!(signed.url.contains("sr=b"), "one blob only: {}", signed.url);
    assert_eq!(
        signed.headers,
        [
            ("content-type".to_owned(), "image/png".to_owned()),
            ("x-ms-blob-type".to_owned(), "BlockBlob".to_owned())
        ]
    );
    let left = signed.expires_at.duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(290) && left <= Duration::from_secs(300));

    let client = reqwest::Client::new();
    let send = |url: String| {
        let mut req = client
            .put(url)
            .body(b"\x89PNG\r\n\x1a\n not really".to_vec());
        for (n, v) in &signed.headers {
            req = req.header(n, v);
        }
        req.send()
    };
    let tampered = signed.url.replace("sig=", "sig=AAAA");
    let refused = send(tampered).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403, "a tampered SAS");
    let put = send(signed.url.clone()).await.unwrap();
    assert_eq!(
        put.status().as_u16(),
        201,
        "{}",
        put.text().await.unwrap_or_default()
    );

    let got = s.get(&key).await.unwrap();
    assert_eq!(got.body.as_ref(), b"\x89PNG\r\n\x1a\n not really");
    assert_eq!(got.meta.content_type.as_deref(), Some("image/png"));
    assert!(
        s.get_tags(&key).await.unwrap().is_empty(),
        "not scanned yet"
    );

    for bad in [
        Duration::ZERO,
        Duration::from_millis(1500),
        Duration::from_secs(8 * 86400),
    ] {
        assert!(matches!(
            s.sign_upload(&key, "image/png", bad).await,
            Err(upload_core::Error::ExpiryOutOfRange { .. })
        ));
    }
    s.delete(&key).await.unwrap();
}
