//! The scan verdict gates serving on a backend without tags
//! (`LocalFileSystem`), seen from the attacker's side: the worker, the
//! in-memory scanner and the upload API's status route run on three
//! `ObjectStoreStorage` buckets on disk.
//!
//! The gate: the adapter keeps tags in sidecar objects bound to the
//! object's backend ETag, so the worker's `scan-status` tags (CLEAN,
//! INFECTED) are real on every backend; variants and the manifest are
//! written only by the worker after the scan; the status route hands out
//! URLs of variants only, from the manifest. So an unscanned upload gets
//! no URL (202 pending), an infected one gets none either (no variants,
//! the original moved to quarantine), and bytes swapped under a scanned
//! key lose their CLEAN tag.

use std::sync::Arc;
use std::time::Duration;

use upload_core::event::S3EventRecord;
use upload_core::{Bytes, ObjectKey, PutOptions, Storage, UploadPolicy};
use upload_object_store::ObjectStoreStorage;
use upload_pipeline::{MemoryQueue, Queue, StandardCodec, Worker, WorkerConfig};
use upload_presign::{Credentials, Presigner, ServerTimeouts, Url};
use upload_scan::{MemoryScanner, Quarantine};
use upload_server::http::request::Parts;
use upload_server::{AppState, AuthError, FnAuthorizer, Owner, ServerConfig, router};

struct World {
    _dir: TempDir,
    queue: Arc<MemoryQueue>,
    uploads: Arc<ObjectStoreStorage>,
    processed: Arc<ObjectStoreStorage>,
    quarantine: Arc<ObjectStoreStorage>,
    worker: Worker,
    api: String,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn world() -> World {
    let dir = std::env::temp_dir().join(format!("upload-scan-gate-{}", uuid::Uuid::new_v4()));
    let bucket = |name: &str| Arc::new(ObjectStoreStorage::local(name, dir.join(name)).unwrap());
    let (uploads, processed, quarantine) =
        (bucket("uploads"), bucket("processed"), bucket("quarantine"));
    let queue = Arc::new(
        MemoryQueue::new("events")
            .with_visibility_timeout(Duration::from_secs(30))
            .unwrap(),
    );
    let policy = UploadPolicy::images_and_pdf(64 << 20).unwrap();
    let worker = Worker::new(
        queue.clone(),
        uploads.clone(),
        processed.clone(),
        Arc::new(MemoryScanner::new()),
        Arc::new(StandardCodec::default()),
        Quarantine::new(quarantine.clone(), "quarantine/"),
        WorkerConfig::new(policy.clone()),
    );
    let presigner = Arc::new(
        Presigner::new(
            Url::parse("http://127.0.0.1:9/").unwrap(),
            "us-east-1",
            Credentials::random(),
        )
        .unwrap(),
    );
    let state = AppState {
        presigner: Arc::new(presigner.clone()),
        uploads: uploads.clone(),
        processed: processed.clone(),
        processed_presigner: Arc::new(presigner),
        config: Arc::new(ServerConfig::new(policy)),
        session_secret: Arc::new([7; 32]),
        authorizer: Arc::new(FnAuthorizer(|parts: &Parts| {
            let owner = parts
                .headers
                .get("x-owner")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            async move {
                Owner::new(owner.unwrap_or_default().as_str())
                    .map_err(|e| AuthError::unauthorized(e.to_string()))
            }
        })),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(upload_presign::serve(
        listener,
        router(state),
        ServerTimeouts::default(),
        std::future::pending(),
    ));
    World {
        _dir: TempDir(dir),
        queue,
        uploads,
        processed,
        quarantine,
        worker,
        api: format!("http://{addr}"),
    }
}

impl World {
    /// Stores an upload as a client's PUT would, and its ObjectCreated
    /// event (object_store backends emit none: Event Grid or the app
    /// publishes it).
    async fn upload(&self, key: &ObjectKey, body: Bytes, ct: &str) {
        let meta = self
            .uploads
            .put(
                key,
                body,
                PutOptions::default()
                    .with_content_type(ct)
                    .with_create_only(true),
            )
            .await
            .unwrap();
        let record = S3EventRecord::new(
            "us-east-1",
            "uploads",
            key,
            "ObjectCreated:Put",
            Some(meta.size),
            Some(&meta.etag),
            "0000000000000001",
        );
        self.queue.send(record.to_message()).await.unwrap();
    }

    /// `GET /uploads/status?key=` as `alice`: (HTTP status, JSON body).
    async fn status(&self, key: &ObjectKey) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .get(format!("{}/uploads/status?key={key}", self.api))
            .header("x-owner", "alice")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn scan_status(&self, key: &ObjectKey) -> Option<String> {
        self.uploads
            .get_tags(key)
            .await
            .unwrap()
            .get("scan-status")
            .map(str::to_owned)
    }
}

fn sample(path: &str) -> Bytes {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/").to_owned() + path)
        .unwrap()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unscanned_upload_gets_no_url_and_no_clean_tag() {
    let w = world().await;
    let key = upload_core::upload_key("alice", "pdf").unwrap();
    w.upload(
        &key,
        Bytes::from_static(b"%PDF-1.4\nnot scanned yet"),
        "application/pdf",
    )
    .await;
    assert_eq!(w.scan_status(&key).await, None, "not scanned, not tagged");
    let (status, body) = w.status(&key).await;
    assert_eq!((status, body["state"].as_str()), (202, Some("pending")));
    assert!(
        w.processed.list("").await.unwrap().is_empty(),
        "no variant, no manifest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infected_upload_is_quarantined_and_never_served() {
    let w = world().await;
    let key = upload_core::upload_key("alice", "pdf").unwrap();
    // A PDF header and the project's test signature: the type check
    // passes, only the scanner catches it.
    let body = Bytes::from([b"%PDF-1.4\n".as_slice(), &upload_scan::test_marker()].concat());
    w.upload(&key, body.clone(), "application/pdf").await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.infected, stats.failed), (1, 0));
    let (status, got) = w.status(&key).await;
    assert_eq!(status, 200);
    assert_eq!(got["manifest"]["verdict"], "infected", "{got}");
    assert_eq!(
        got["variant_urls"],
        serde_json::json!([]),
        "no URL handed out"
    );
    let processed: Vec<String> = w
        .processed
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.into_string())
        .collect();
    assert_eq!(processed.len(), 1, "only the manifest: {processed:?}");
    assert!(processed[0].ends_with("manifest.json"), "{processed:?}");
    assert!(
        matches!(
            w.uploads.head(&key).await,
            Err(upload_core::Error::NotFound { .. })
        ),
        "the original left the uploads bucket"
    );
    let qkey = ObjectKey::new(format!("quarantine/{key}")).unwrap();
    assert_eq!(w.quarantine.get(&qkey).await.unwrap().body, body);
    assert_eq!(
        w.quarantine
            .get_tags(&qkey)
            .await
            .unwrap()
            .get("scan-status"),
        Some("INFECTED"),
        "the verdict tag reads back on a tag-less backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_swapped_after_the_scan_lose_the_clean_tag() {
    let w = world().await;
    let key = upload_core::upload_key("alice", "jpg").unwrap();
    w.upload(
        &key,
        sample("photos/derived_bythewater_orient6.jpg"),
        "image/jpeg",
    )
    .await;
    let stats = w.worker.run_until_idle().await.unwrap();
    assert_eq!((stats.clean, stats.failed), (1, 0));
    assert_eq!(w.scan_status(&key).await.as_deref(), Some("CLEAN"));
    let (status, got) = w.status(&key).await;
    assert_eq!(status, 200);
    assert_eq!(got["variant_urls"].as_array().map(Vec::len), Some(2));
    // The attacker replaces the bytes behind the adapter's back (a
    // signed URL still valid, or access to the disk): the sidecar no
    // longer describes the object, so the CLEAN tag is gone.
    use upload_object_store::object_store::{ObjectStoreExt, path::Path};
    w.uploads
        .store()
        .put(
            &Path::parse(key.as_str()).unwrap(),
            upload_scan::eicar().into(),
        )
        .await
        .unwrap();
    assert_eq!(w.scan_status(&key).await, None, "not CLEAN any more");
    let head = w.uploads.head(&key).await.unwrap();
    assert_eq!(head.tag_count, Some(0));
    assert_ne!(
        head.etag,
        upload_core::storage::etag_of(&sample("photos/derived_bythewater_orient6.jpg"))
    );
}

#[tokio::test]
async fn the_adapters_own_objects_cannot_be_written_or_listed() {
    let s = ObjectStoreStorage::in_memory("uploads").unwrap();
    let k = ObjectKey::new("uploads/alice/a.jpg").unwrap();
    s.put(
        &k,
        Bytes::from_static(b"x"),
        PutOptions::default()
            .with_tags(upload_core::Tags::from_pairs([("scan-status", "PENDING")]).unwrap()),
    )
    .await
    .unwrap();
    let forged = ObjectKey::new(".upload-sdk/meta/uploads/alice/a.jpg.json").unwrap();
    let err = s
        .put(&forged, Bytes::from_static(b"{}"), PutOptions::default())
        .await
        .expect_err("a sidecar key is refused");
    assert!(
        matches!(err, upload_core::Error::InvalidKey { .. }),
        "{err:?}"
    );
    // Keys that object_store would alias (`a//b` is `a/b`) or refuse
    // never get this far: ObjectKey refuses them (the adapter checks
    // again).
    for bad in ["a//b", "a/./b", "a/../b", "a/", "/a"] {
        assert!(ObjectKey::new(bad).is_err(), "{bad}");
    }
    let listed: Vec<String> = s
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.into_string())
        .collect();
    assert_eq!(listed, ["uploads/alice/a.jpg"], "sidecars are not listed");
    assert_eq!(
        s.get_tags(&k).await.unwrap().get("scan-status"),
        Some("PENDING")
    );
}
