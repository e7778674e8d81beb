//! The upload API counts the presigned URLs it hands out by route and
//! kind (`upload_api_presigned_urls_total`) and the multipart uploads it
//! creates, read from a Prometheus scrape after real requests. Refused
//! requests count nothing.
//!
//! One test in this binary: the recorder is process-wide.

mod common;

use std::sync::Arc;

use serde_json::{Value, json};
use upload_core::{MemoryStorage, UploadPolicy};
use upload_multipart::MemoryMultipartStore;
use upload_pipeline::testkit::metrics::{sample, samples};
use upload_presign::{Credentials, Presigner, ServerTimeouts};
use upload_server::{AppState, ServerConfig, UploadRoute, router};

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_are_counted_by_route_and_kind() {
    let handle = upload_pipeline::service::install_prometheus().unwrap();
    upload_server::metrics::describe();

    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let mp = Arc::new(MemoryMultipartStore::new(storage.clone()));
    // Nothing is uploaded: the endpoint is only named in the URLs.
    let endpoint = "http://127.0.0.1:9".parse().unwrap();
    let presigner = Arc::new(Presigner::new(endpoint, "us-east-1", Credentials::random()).unwrap());
    let document = UploadRoute::new(
        "document",
        UploadPolicy::new(["application/pdf"], 64 * MIB).unwrap(),
    )
    .unwrap()
    .with_key_prefix("documents")
    .unwrap()
    .with_multipart_threshold(5 * MIB)
    .with_part_size(5 * MIB);
    let config = ServerConfig::new(UploadPolicy::images_and_pdf(64 * MIB).unwrap())
        .with_route(document)
        .unwrap();
    let state = AppState {
        presigner: Arc::new(presigner.clone()),
        uploads: mp.clone(),
        processed: storage.clone(),
        processed_presigner: Arc::new(presigner),
        config: Arc::new(config),
        session_secret: Arc::new([7; 32]),
        authorizer: common::test_authorizer(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(upload_presign::serve(
        listener,
        router(state),
        ServerTimeouts::default(),
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    let post = |owner: Option<&'static str>, path: &'static str, body: Value| {
        let (http, api) = (http.clone(), api.clone());
        async move {
            let mut r = http.post(format!("{api}{path}")).json(&body);
            if let Some(o) = owner {
                r = r.header("x-owner", o);
            }
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // Default route: two PUTs and a POST form.
    for _ in 0..2 {
        let (s, v) = post(
            Some("alice"),
            "/uploads",
            json!({"content_type": "image/png", "size": 4}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = post(
        Some("alice"),
        "/uploads",
        json!({"content_type": "image/png", "size": 4, "form": "post"}),
    )
    .await;
    assert_eq!((s, v["kind"].as_str()), (200, Some("post")), "{v}");
    // Document route: a 12 MiB multipart upload, 3 part URLs at once,
    // then 2 of them signed again.
    let (s, v) = post(
        Some("alice"),
        "/routes/document/uploads",
        json!({"content_type": "application/pdf", "size": 12 * MIB}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["parts"].as_array().map(Vec::len), Some(3), "{v}");
    let (s, again) = post(
        Some("alice"),
        "/routes/document/multipart/sign",
        json!({"key": v["key"], "upload_id": v["upload_id"], "session": v["session"], "first": 2, "last": 3}),
    )
    .await;
    assert_eq!(s, 200, "{again}");
    // Refused: not signed in, a type the route refuses, too large.
    for (owner, body) in [
        (None, json!({"content_type": "image/png", "size": 4})),
        (
            Some("alice"),
            json!({"content_type": "text/html", "size": 4}),
        ),
        (
            Some("alice"),
            json!({"content_type": "image/png", "size": 65 * MIB}),
        ),
    ] {
        let (s, v) = post(owner, "/uploads", body).await;
        assert!(s == 401 || s == 400 || s == 413 || s == 415, "{s} {v}");
    }

    let s = samples(&handle.render());
    let get = |series: &str| sample(&s, series);
    assert_eq!(
        get(r#"upload_api_presigned_urls_total{route="default",kind="put"}"#),
        2.0
    );
    assert_eq!(
        get(r#"upload_api_presigned_urls_total{route="default",kind="post"}"#),
        1.0
    );
    assert_eq!(
        get(r#"upload_api_presigned_urls_total{route="document",kind="part"}"#),
        5.0
    );
    assert_eq!(
        get(r#"upload_api_multipart_sessions_total{route="document"}"#),
        1.0
    );
    assert_eq!(
        s.keys()
            .filter(|k| k.starts_with("upload_api_presigned_urls_total"))
            .count(),
        3,
        "{s:#?}"
    );
}
