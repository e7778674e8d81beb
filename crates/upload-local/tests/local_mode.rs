//! The local mode end to end on a temporary data directory, over real
//! HTTP: a photo through the API, the endpoint, the disk queue and the
//! worker into variants; a restart in-process with pending events and a
//! lost one; and the attacker's side (another owner's upload, unscanned
//! and infected uploads never served).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use upload_core::{Bytes, ObjectKey, PutOptions, Storage};
use upload_local::{LocalConfig, LocalMode, UPLOADS_BUCKET};
use upload_pipeline::manifest::manifest_key;

const MIB: u64 = 1024 * 1024;
const PHOTO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../samples/photos/derived_bythewater_orient6.jpg"
);

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn open(dir: &Path, worker: bool) -> LocalMode {
    LocalMode::open(
        dir,
        LocalConfig::default()
            .with_listen(any_port())
            .with_endpoint_listen(any_port())
            .with_worker(worker)
            .with_max_bytes(64 * MIB)
            .with_multipart_threshold(5 * MIB)
            .with_part_size(5 * MIB),
    )
    .await
    .expect("the local mode starts")
}

/// `method path` on the API as `owner`: (status, JSON body).
async fn api(
    mode: &LocalMode,
    owner: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{}", mode.api_url().as_str().trim_end_matches('/'), path);
    let http = reqwest::Client::new();
    let mut r = match method {
        "GET" => http.get(url),
        "POST" => http.post(url),
        other => panic!("{other}"),
    }
    .header("x-owner", owner);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let res = r.send().await.expect("the API answers");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Sends a signed request (`{"method", "url", "headers"}`) with `body`:
/// (status, ETag header).
async fn send_signed(req: &Value, body: Bytes) -> (u16, Option<String>) {
    let http = reqwest::Client::new();
    let url = req["url"].as_str().unwrap();
    let mut r = match req["method"].as_str().unwrap() {
        "PUT" => http.put(url),
        "GET" => http.get(url),
        other => panic!("{other}"),
    };
    for h in req["headers"].as_array().unwrap() {
        r = r.header(h[0].as_str().unwrap(), h[1].as_str().unwrap());
    }
    let res = r.body(body).send().await.expect("the endpoint answers");
    let etag = res
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim_matches('"').to_owned());
    (res.status().as_u16(), etag)
}

/// Asks for a presigned PUT and sends `body` with it; returns the key.
async fn upload_put(mode: &LocalMode, owner: &str, content_type: &str, body: Bytes) -> String {
    let (status, ticket) = api(
        mode,
        owner,
        "POST",
        "/uploads",
        Some(json!({"content_type": content_type, "size": body.len()})),
    )
    .await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(ticket["kind"], "put", "{ticket}");
    let (put, _) = send_signed(&ticket["request"], body).await;
    assert_eq!(put, 200, "the presigned PUT is accepted");
    ticket["key"].as_str().unwrap().to_owned()
}

/// Waits (up to 120 s) for the worker's outcome of `key`: the status
/// answer once it is `processed`.
async fn wait_processed(mode: &LocalMode, owner: &str, key: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = api(
            mode,
            owner,
            "GET",
            &format!("/uploads/status?key={key}&wait=10"),
            None,
        )
        .await;
        if status == 200 {
            assert_eq!(body["state"], "processed", "{body}");
            return body;
        }
        assert_eq!(status, 202, "{body}");
        assert!(Instant::now() < deadline, "{key} not processed in time");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_presigned_through_the_api_comes_back_as_variants() {
    let dir = tempfile::tempdir().unwrap();
    let mode = open(dir.path(), true).await;
    let photo = Bytes::from(std::fs::read(PHOTO).unwrap());
    let key = upload_put(&mode, "alice", "image/jpeg", photo.clone()).await;
    assert!(key.starts_with("uploads/alice/"), "{key}");
    let got = wait_processed(&mode, "alice", &key).await;
    let manifest = &got["manifest"];
    assert_eq!(manifest["verdict"], "clean", "{got}");
    assert_eq!(manifest["source"]["sniffed"], "image/jpeg");
    let variants = manifest["variants"].as_array().unwrap();
    assert!(!variants.is_empty(), "{got}");
    let urls = got["variant_urls"].as_array().unwrap();
    assert_eq!(urls.len(), variants.len());
    // Every variant is on disk and served by the endpoint, with its type.
    for (v, u) in variants.iter().zip(urls) {
        let res = reqwest::get(u[1].as_str().unwrap()).await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{u}");
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            v["content_type"].as_str().unwrap()
        );
        let body = res.bytes().await.unwrap();
        assert_eq!(body.len() as u64, v["bytes"].as_u64().unwrap());
        let file = dir
            .path()
            .join("buckets/processed")
            .join(v["key"].as_str().unwrap());
        assert_eq!(std::fs::read(&file).unwrap(), body, "{}", file.display());
    }
    // The original is on disk, byte for byte, tagged CLEAN.
    let original = ObjectKey::new(key.clone()).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("buckets/uploads").join(&key)).unwrap(),
        photo
    );
    assert_eq!(
        mode.uploads()
            .get_tags(&original)
            .await
            .unwrap()
            .get("scan-status"),
        Some("CLEAN")
    );
    // The worker deletes the message after it writes the manifest: wait
    // for the delete rather than race it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while mode.queue().len().unwrap() != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mode.queue().len().unwrap(), 0, "the event was deleted");
    assert_eq!(mode.dead_letter_queue().len().unwrap(), 0);
    let stats = mode.shutdown().await.unwrap();
    assert_eq!((stats.clean, stats.failed), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_and_lost_events_are_processed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mode = open(dir.path(), false).await;
    let photo = Bytes::from(std::fs::read(PHOTO).unwrap());
    // Uploaded while no worker runs: its event waits in the queue file.
    let queued = upload_put(&mode, "alice", "image/jpeg", photo.clone()).await;
    // Written without its event (a crash between the write and the send).
    let lost = upload_core::upload_key("alice", "jpg").unwrap();
    mode.uploads()
        .put(
            &lost,
            photo.clone(),
            PutOptions::default().with_content_type("image/jpeg"),
        )
        .await
        .unwrap();
    assert_eq!(mode.queue().len().unwrap(), 1);
    // Not scanned, so not served: pending, nothing in processed, and the
    // original is not readable without a signature.
    let (status, body) = api(
        &mode,
        "alice",
        "GET",
        &format!("/uploads/status?key={queued}"),
        None,
    )
    .await;
    assert_eq!((status, body["state"].as_str()), (202, Some("pending")));
    assert!(mode.processed().list("").await.unwrap().is_empty());
    let unsigned = reqwest::get(format!("{}{UPLOADS_BUCKET}/{queued}", mode.endpoint_url()))
        .await
        .unwrap();
    let status = unsigned.status().as_u16();
    let body = unsigned.text().await.unwrap();
    assert!((400..404).contains(&status), "{status} {body}");
    assert!(
        body.contains("<Code>"),
        "an S3 error, not the object: {body}"
    );
    mode.shutdown().await.unwrap();

    let mode = open(dir.path(), true).await;
    let r = mode.reconciled();
    assert_eq!((r.listed, r.done, r.sent), (2, 0, 2), "{r:?}");
    for key in [queued.as_str(), lost.as_str()] {
        let got = wait_processed(&mode, "alice", key).await;
        assert_eq!(got["manifest"]["verdict"], "clean", "{got}");
        assert!(!got["manifest"]["variants"].as_array().unwrap().is_empty());
    }
    mode.shutdown().await.unwrap();

    // Both are done now: the next start sends nothing.
    let mode = open(dir.path(), false).await;
    let r = mode.reconciled();
    assert_eq!((r.listed, r.done, r.sent), (2, 2, 0), "{r:?}");
    mode.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_owner_cannot_list_sign_or_complete_an_upload() {
    let dir = tempfile::tempdir().unwrap();
    let mode = open(dir.path(), true).await;
    let size = 6 * MIB;
    let (status, t) = api(
        &mode,
        "alice",
        "POST",
        "/uploads",
        Some(json!({"content_type": "application/pdf", "size": size})),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["kind"], "multipart", "{t}");
    assert_eq!(t["part_count"], 2);
    let mut part1 = vec![b'x'; (5 * MIB) as usize];
    part1[..9].copy_from_slice(b"%PDF-1.4\n");
    let (s, etag1) = send_signed(&t["parts"][0]["request"], Bytes::from(part1)).await;
    assert_eq!(s, 200);
    let etag1 = etag1.unwrap();
    let q = format!(
        "/multipart/parts?key={}&upload_id={}&session={}",
        t["key"].as_str().unwrap(),
        t["upload_id"].as_str().unwrap(),
        t["session"].as_str().unwrap()
    );
    let session = json!({"key": t["key"], "upload_id": t["upload_id"], "session": t["session"]});
    // Bob, holding everything Alice's client holds.
    let (s, e) = api(&mode, "bob", "GET", &q, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("not_your_upload")),
        "{e}"
    );
    let mut sign = session.clone();
    sign["first"] = json!(2);
    sign["last"] = json!(2);
    let (s, e) = api(&mode, "bob", "POST", "/multipart/sign", Some(sign)).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("not_your_upload")),
        "{e}"
    );
    let mut complete = session.clone();
    complete["parts"] = json!([{"part_number": 1, "etag": etag1}]);
    let (s, e) = api(&mode, "bob", "POST", "/multipart/complete", Some(complete)).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("not_your_upload")),
        "{e}"
    );
    let mut abort = session.clone();
    abort["session"] = t["session"].clone();
    let (s, e) = api(&mode, "bob", "POST", "/multipart/abort", Some(abort)).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("not_your_upload")),
        "{e}"
    );
    // Nothing happened to Alice's upload: part 1 is still there, and no
    // object was made.
    let (s, page) = api(&mode, "alice", "GET", &q, None).await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["parts"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(
        page["parts"][0]["etag"]
            .as_str()
            .map(|e| e.trim_matches('"')),
        Some(etag1.as_str())
    );
    let key = ObjectKey::new(t["key"].as_str().unwrap()).unwrap();
    assert!(mode.uploads().head(&key).await.is_err());
    assert_eq!(mode.queue().len().unwrap(), 0, "no event");
    mode.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eicar_upload_ends_in_quarantine_and_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let mode = open(dir.path(), true).await;
    assert!(
        !mode.scanner().is_real(),
        "no clamd given: the memory scanner"
    );
    let eicar = upload_scan::eicar();
    // Declared as a JPEG: the API cannot tell, the worker's scan does.
    let key = upload_put(&mode, "mallory", "image/jpeg", eicar.clone()).await;
    let got = wait_processed(&mode, "mallory", &key).await;
    assert_eq!(got["manifest"]["verdict"], "infected", "{got}");
    assert_eq!(got["variant_urls"], json!([]), "no URL handed out");
    let processed: Vec<String> = mode
        .processed()
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.into_string())
        .collect();
    let okey = ObjectKey::new(key.clone()).unwrap();
    assert_eq!(
        processed,
        [manifest_key(&okey).unwrap().into_string()],
        "only the manifest, no variant"
    );
    assert!(
        matches!(
            mode.uploads().head(&okey).await,
            Err(upload_core::Error::NotFound { .. })
        ),
        "the original left the uploads bucket"
    );
    let q = mode.quarantine().get(&okey).await.unwrap();
    assert_eq!(q.body, eicar);
    assert_eq!(
        mode.quarantine()
            .get_tags(&okey)
            .await
            .unwrap()
            .get("scan-status"),
        Some("INFECTED")
    );
    mode.shutdown().await.unwrap();
    // Quarantined originals get no event at the next start.
    let mode = open(dir.path(), false).await;
    assert_eq!(mode.reconciled().sent, 0);
    mode.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_second_process_on_the_same_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mode = open(dir.path(), false).await;
    let err = LocalMode::open(
        dir.path(),
        LocalConfig::default()
            .with_listen(any_port())
            .with_endpoint_listen(any_port()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, upload_local::LocalError::Queue(_)), "{err}");
    mode.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_dev_authorizer_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let err = LocalMode::open(
        dir.path(),
        LocalConfig::default().with_listen(SocketAddr::from(([0, 0, 0, 0], 0))),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, upload_local::LocalError::Config(_)), "{err}");
}
