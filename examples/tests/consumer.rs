//! The consumer example end to end on the in-memory backends: its bearer
//! tokens and SQLite database, the `avatar` and `document` routes, direct
//! uploads through presigned URLs to the local endpoint (which verifies
//! signatures as S3 does), the worker in-process, outcomes pushed to the
//! app's webhook receiver through the outbox and stored on the user's
//! records, then served. Also from the attacker's side: another user's
//! records, a forged or replayed webhook, an upload the hook refuses.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use upload_core::{MemoryStorage, MultipartStore, Storage, UploadPolicy};
use upload_examples::consumer::{self, Consumer};
use upload_multipart::MemoryMultipartStore;
use upload_pipeline::notify::{
    CancellationToken, DeliveryConfig, WebhookDeliverer, WebhookNotifier, WebhookSecret,
    WebhookSigner, WebhookVerifier,
};
use upload_pipeline::service::spawn_worker;
use upload_pipeline::{MemoryQueue, Queue, ReceiveOptions, StandardCodec, Worker, WorkerConfig};
use upload_presign::{Credentials, LocalEndpoint, Presigner, Verifier};
use upload_scan::{EICAR_SIGNATURE, MemoryScanner, Quarantine, Scanner, eicar};
use upload_server::{AppState, UploadTicket};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples");

fn sample(path: &str) -> Vec<u8> {
    std::fs::read(format!("{SAMPLES}/{path}")).unwrap()
}

struct App {
    api: String,
    http: reqwest::Client,
    secret: WebhookSecret,
}

impl App {
    async fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.api);
        let mut r = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Asks the route for a PUT ticket and uploads `body` with it.
    async fn upload(
        &self,
        token: &str,
        route: &str,
        ct: &str,
        body: Vec<u8>,
        input: Value,
    ) -> String {
        let (status, t) = self
            .call(
                Some(token),
                "POST",
                &format!("/api/uploads/routes/{route}/uploads"),
                Some(json!({"content_type": ct, "size": body.len(), "input": input})),
            )
            .await;
        assert_eq!(status, 200, "{t}");
        let UploadTicket::Put { key, request, .. } = serde_json::from_value(t).unwrap() else {
            panic!("a PUT ticket")
        };
        let mut r = self.http.put(&request.url);
        for (n, v) in &request.headers {
            r = r.header(n.as_str(), v.as_str());
        }
        assert_eq!(r.body(body).send().await.unwrap().status().as_u16(), 200);
        key
    }

    /// `GET /me` until `done` holds (at most 60 s).
    async fn me_until(&self, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..600 {
            let (status, me) = self.call(Some(token), "GET", "/me", None).await;
            assert_eq!(status, 200, "{me}");
            if done(&me) {
                return me;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the outcome never reached the app's records")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_app_end_to_end_in_memory() {
    // Storage, events and the endpoint the browser uploads to.
    let events = Arc::new(MemoryQueue::new("events"));
    let uploads = Arc::new(
        MemoryStorage::new("uploads")
            .unwrap()
            .with_events(events.clone()),
    );
    let processed = Arc::new(MemoryStorage::new("processed").unwrap());
    let quarantine = Arc::new(MemoryStorage::new("quarantine").unwrap());
    let mp = Arc::new(MemoryMultipartStore::new(uploads.clone()));
    let creds = Credentials::random();
    let endpoint = LocalEndpoint::new(Verifier::new("us-east-1", [creds.clone()]))
        .with_bucket(uploads.clone(), Some(mp.clone()))
        .with_bucket(processed.clone(), None)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let presigner = Arc::new(Presigner::new(endpoint.url(), "us-east-1", creds).unwrap());
    flow(Backends {
        presigner,
        multipart: mp,
        uploads,
        processed,
        events,
        scanner: Arc::new(MemoryScanner::new()),
        quarantine: Quarantine::new(quarantine, "quarantine/"),
        outbox: Arc::new(MemoryQueue::new("webhooks")),
    })
    .await;
}

/// The same on moto (S3 with S3 -> SQS notifications, SQS as the webhook
/// outbox) with clamd: `#[ignore]`d in plain `cargo test`; scripts/test.sh
/// starts both and runs it (without them it fails, never skips).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto and clamd: run scripts/test.sh"]
async fn the_consumer_app_end_to_end_on_moto_and_clamd() {
    use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
    use upload_core::s3::{AwsSettings, S3Storage};
    use upload_pipeline::sqs::{QueueSettings, SqsQueue, sqs_client};
    let env = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run scripts/test.sh, which starts moto and clamd")
        })
    };
    let endpoint = env("UPLOAD_SDK_MOTO_ENDPOINT");
    let clamd = env("UPLOAD_SDK_CLAMD_TCP");
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(upload_core::s3::aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    let settings = AwsSettings::local(&endpoint);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let plan = upload_examples::setup::SetupPlan {
        uploads_bucket: format!("consumer-uploads-{}", &run[..8]),
        processed_bucket: format!("consumer-processed-{}", &run[..8]),
        queue_name: format!("consumer-events-{}", &run[..8]),
        max_receive_count: 5,
        visibility_timeout: Duration::from_secs(60),
        // Every route's prefix notifies the queue.
        prefix: String::new(),
        cors_origins: Vec::new(),
        abort_incomplete_days: 1,
        enable_versioning: false,
        // moto enforces bucket policies without their conditions.
        deny_unscanned_reads: false,
        worker_principal_arns: Vec::new(),
        require_create_only_uploads: false,
    };
    let setup = upload_examples::setup::run(&settings, &sdk, &plan)
        .await
        .unwrap();
    let s3 = settings.s3_client(&sdk);
    let uploads = Arc::new(S3Storage::new(s3.clone(), &plan.uploads_bucket).unwrap());
    let processed = Arc::new(S3Storage::new(s3, &plan.processed_bucket).unwrap());
    let sqs = sqs_client(&settings, &sdk);
    let outbox = Arc::new(
        SqsQueue::create(
            sqs.clone(),
            &format!("consumer-webhooks-{}", &run[..8]),
            &QueueSettings::default(),
        )
        .await
        .unwrap(),
    );
    let presigner = Arc::new(
        Presigner::new(
            endpoint.parse().unwrap(),
            "us-east-1",
            Credentials::new("testing", "testing"),
        )
        .unwrap()
        .with_style(upload_presign::sigv4::AddressingStyle::Path),
    );
    flow(Backends {
        presigner,
        multipart: uploads.clone(),
        uploads: uploads.clone(),
        processed,
        events: Arc::new(SqsQueue::new(sqs, &setup.queue_url)),
        scanner: Arc::new(upload_scan::ClamdScanner::new(
            upload_scan::ClamdConfig::new(upload_scan::ClamdAddress::Tcp(clamd)),
        )),
        quarantine: Quarantine::new(uploads, "quarantine/"),
        outbox,
    })
    .await;
}

/// What the app and its worker run on.
struct Backends<Q: Queue + 'static> {
    presigner: Arc<Presigner>,
    multipart: Arc<dyn MultipartStore>,
    uploads: Arc<dyn Storage>,
    processed: Arc<dyn Storage>,
    events: Arc<dyn Queue>,
    scanner: Arc<dyn Scanner>,
    quarantine: Quarantine,
    outbox: Arc<Q>,
}

/// The app, its worker and deliverer on `b`; then Alice and Bob use it.
async fn flow<Q: Queue + 'static>(b: Backends<Q>) {
    let presigner = b.presigner;
    // The app: its database, users, routes and webhook secret.
    let db = consumer::open_db(":memory:").unwrap();
    consumer::add_user(&db, "alice", "token-alice").unwrap();
    consumer::add_user(&db, "bob", "token-bob").unwrap();
    let secret = WebhookSecret::generate();
    let state = AppState {
        presigner: Arc::new(presigner.clone()),
        uploads: b.multipart,
        processed: b.processed.clone(),
        processed_presigner: Arc::new(presigner.clone()),
        config: Arc::new(consumer::upload_config(db.clone()).unwrap()),
        session_secret: Arc::new([5; 32]),
        authorizer: consumer::authorizer(db.clone()),
    };
    let app = consumer::router(
        Consumer {
            db: db.clone(),
            verifier: WebhookVerifier::new(secret.clone()),
            processed_presigner: Arc::new(presigner.clone()),
            processed_bucket: b.processed.bucket().to_owned(),
        },
        state,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The worker in-process, its outcomes through an outbox to the app.
    let outbox = b.outbox;
    let config = consumer::worker_routes(
        WorkerConfig::new(UploadPolicy::images_and_pdf(25_000_000).unwrap())
            .with_receive(ReceiveOptions::default().with_wait(Duration::from_millis(100))),
    )
    .unwrap();
    let worker = Worker::new(
        b.events,
        b.uploads,
        b.processed,
        b.scanner,
        Arc::new(StandardCodec::default()),
        b.quarantine,
        config,
    )
    .with_notifier(Arc::new(WebhookNotifier::new(outbox.clone())));
    let worker = spawn_worker(worker);
    let deliverer = WebhookDeliverer::new(
        outbox,
        WebhookSigner::new(secret.clone()),
        DeliveryConfig::new(format!("{api}/webhooks/uploads"))
            .with_wait(Duration::from_millis(100)),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let delivery = {
        let stop = stop.clone();
        tokio::spawn(async move { deliverer.run(stop).await })
    };

    let app = App {
        api,
        http: reqwest::Client::new(),
        secret,
    };
    // Strangers and refusals first: nothing is signed.
    let (status, _) = app
        .call(
            None,
            "POST",
            "/api/uploads/routes/avatar/uploads",
            Some(json!({"content_type": "image/png", "size": 4})),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .call(
            Some("forged"),
            "POST",
            "/api/uploads/routes/avatar/uploads",
            Some(json!({"content_type": "image/png", "size": 4})),
        )
        .await;
    assert_eq!(status, 401);
    let (status, e) = app
        .call(
            Some("token-alice"),
            "POST",
            "/api/uploads/routes/document/uploads",
            Some(json!({"content_type": "application/pdf", "size": 9})),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("upload_refused")),
        "a document needs a title"
    );
    let (status, e) = app
        .call(
            Some("token-alice"),
            "POST",
            "/api/uploads/routes/avatar/uploads",
            Some(json!({"content_type": "application/pdf", "size": 9})),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (415, Some("content_type_not_allowed"))
    );
    let (status, _) = app
        .call(
            Some("token-alice"),
            "POST",
            "/api/uploads/uploads",
            Some(json!({"content_type": "application/pdf", "size": 9})),
        )
        .await;
    assert_eq!(status, 404, "only the app's routes are served");

    // Alice: an avatar and a document; Bob: a document carrying EICAR.
    let avatar = app
        .upload(
            "token-alice",
            "avatar",
            "image/jpeg",
            sample("photos/photo_colorfulcups_2560x1600_gps.jpg"),
            Value::Null,
        )
        .await;
    assert!(avatar.starts_with("avatars/alice/"), "{avatar}");
    let doc = app
        .upload(
            "token-alice",
            "document",
            "application/pdf",
            sample("photos/exiftool_PDF.pdf"),
            json!({"title": "Tax return 2026"}),
        )
        .await;
    assert!(doc.starts_with("documents/alice/"), "{doc}");
    app.upload(
        "token-bob",
        "document",
        "application/pdf",
        eicar().to_vec(),
        json!({"title": "invoice"}),
    )
    .await;

    let me = app
        .me_until("token-alice", |me| {
            me["avatar"]["variants"]
                .as_object()
                .is_some_and(|v| v.len() == 2)
                && me["documents"][0]["state"] == "ready"
        })
        .await;
    assert_eq!(me["user"], "alice");
    assert_eq!(me["documents"].as_array().unwrap().len(), 1, "{me}");
    assert_eq!(me["documents"][0]["title"], "Tax return 2026");
    assert!(
        me["avatar"]["thumbhash"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    // The served variants are the route's: 256 and 64 px squares, WebP.
    for (name, side) in [("avatar-256", 256), ("avatar-64", 64)] {
        let url = me["avatar"]["variants"][name].as_str().unwrap();
        let r = app.http.get(url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{name}");
        let img = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
        assert_eq!((img.width(), img.height()), (side, side), "{name}");
    }

    let me = app
        .me_until("token-bob", |me| {
            me["documents"][0]["state"] == "quarantined"
        })
        .await;
    // clamd names it with its database's suffix (`.UNOFFICIAL` for ours).
    let signature = me["documents"][0]["reason"].as_str().unwrap_or_default();
    assert!(signature.starts_with(EICAR_SIGNATURE), "{signature}");
    assert_eq!(
        me["avatar"]["variants"],
        json!({}),
        "Bob sees none of Alice's records"
    );
    assert_eq!(me["documents"].as_array().unwrap().len(), 1);

    // A webhook not signed with the app's secret changes nothing.
    let forged = json!({"type": "upload.processed", "timestamp": "2026-12-04T00:00:00Z",
        "data": {"bucket": "uploads", "key": doc, "route": "document", "owner": "alice",
                 "metadata": {"document-id": "1"}, "variants": []}});
    let body = forged.to_string();
    let other =
        WebhookSigner::new(WebhookSecret::generate()).headers_now("upl_forged", body.as_bytes());
    let r = signed_post(&app, &other, &body).await;
    assert_eq!(r.status().as_u16(), 401);
    let r = app
        .http
        .post(format!("{}/webhooks/uploads", app.api))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "unsigned");
    // A replay of a real delivery (same webhook-id) is applied once.
    let signed =
        WebhookSigner::new(app.secret.clone()).headers_now("upl_replayed", body.as_bytes());
    for want in [true, false] {
        let r = signed_post(&app, &signed, &body).await;
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["applied"], want);
    }

    let stats = worker.shutdown().await.unwrap();
    assert_eq!(stats.failed, 0);
    stop.cancel();
    let delivered = delivery.await.unwrap();
    assert_eq!(delivered.malformed, 0, "{delivered:?}");
    assert!(delivered.delivered >= 3, "{delivered:?}");
}

async fn signed_post(
    app: &App,
    h: &upload_pipeline::notify::SignedHeaders,
    body: &str,
) -> reqwest::Response {
    app.http
        .post(format!("{}/webhooks/uploads", app.api))
        .header("webhook-id", &h.id)
        .header("webhook-timestamp", h.timestamp.to_string())
        .header("webhook-signature", &h.signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}
