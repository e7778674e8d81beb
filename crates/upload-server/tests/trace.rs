//! One trace per upload across the asynchronous gap: the upload API's
//! `presign` span context is signed into the presigned PUT as
//! `x-amz-meta-upload-traceparent`, the client uploads, and the worker's
//! spans (process, scan, decode, encode, upload, notify) become its
//! children. Exported over OTLP/HTTP (JSON) to an in-process collector,
//! the spans of the upload share one trace ID.
//!
//! One test in this binary: the tracing subscriber is process-wide.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt as _;
use upload_core::{MemoryStorage, ObjectKey, Storage, UploadPolicy};
use upload_multipart::MemoryMultipartStore;
use upload_pipeline::notify::MemoryNotifier;
use upload_pipeline::service::{install_otlp, otel_layer};
use upload_pipeline::{MemoryQueue, ReceiveOptions, StandardCodec, Worker, WorkerConfig};
use upload_presign::{Credentials, LocalEndpoint, Presigner, ServerTimeouts, Verifier};
use upload_scan::{MemoryScanner, Quarantine};
use upload_server::{AppState, ServerConfig, UploadTicket, router};

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

/// `POST /v1/traces` with OTLP JSON bodies: every span kept.
async fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap();
                let mut got = Vec::new();
                for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                    for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                        for s in ss["spans"].as_array().into_iter().flatten() {
                            let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
                            got.push(Span {
                                name: text("name"),
                                trace_id: text("traceId"),
                                span_id: text("spanId"),
                                parent_span_id: text("parentSpanId"),
                            });
                        }
                    }
                }
                kept.lock().unwrap().extend(got);
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spans_of_one_upload_share_the_trace_id_of_its_presign() {
    let (collector_url, spans) = collector().await;
    let otlp = install_otlp(&collector_url, "upload-sdk-test").unwrap();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(otel_layer(&otlp)))
        .unwrap();

    // The upload API over a local endpoint that verifies signatures, whose
    // bucket sends ObjectCreated events to the worker's queue.
    let queue = Arc::new(MemoryQueue::new("events"));
    let uploads = Arc::new(
        MemoryStorage::new("uploads")
            .unwrap()
            .with_events(queue.clone()),
    );
    let processed = Arc::new(MemoryStorage::new("processed").unwrap());
    let mp = Arc::new(MemoryMultipartStore::new(uploads.clone()));
    let creds = Credentials::random();
    let endpoint = LocalEndpoint::new(Verifier::new("us-east-1", [creds.clone()]))
        .with_bucket(uploads.clone(), Some(mp.clone()))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let presigner = Arc::new(Presigner::new(endpoint.url(), "us-east-1", creds).unwrap());
    let state = AppState {
        presigner: Arc::new(presigner.clone()),
        uploads: mp.clone(),
        processed: processed.clone(),
        processed_presigner: Arc::new(presigner),
        config: Arc::new(ServerConfig::new(
            UploadPolicy::images_and_pdf(16 << 20).unwrap(),
        )),
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

    let photo = include_bytes!("../../../samples/testdata/hopper.jpg");
    let http = reqwest::Client::new();
    let ticket: UploadTicket = http
        .post(format!("{api}/uploads"))
        .header("x-owner", "alice")
        .json(&json!({"content_type": "image/jpeg", "size": photo.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let UploadTicket::Put { key, request, .. } = ticket else {
        panic!("a PUT ticket");
    };
    let signed_tp = request
        .headers
        .iter()
        .find(|(n, _)| n == "x-amz-meta-upload-traceparent")
        .map(|(_, v)| v.clone())
        .expect("the trace context is a signed header of the PUT");
    let mut put = http.put(&request.url);
    for (n, v) in &request.headers {
        put = put.header(n.as_str(), v.as_str());
    }
    let status = put.body(photo.to_vec()).send().await.unwrap().status();
    assert_eq!(status.as_u16(), 200);
    let stored = uploads
        .head(&ObjectKey::new(key.as_str()).unwrap())
        .await
        .unwrap();
    assert_eq!(stored.metadata.get("upload-traceparent"), Some(&signed_tp));

    let notifier = Arc::new(MemoryNotifier::new());
    let worker = Worker::new(
        queue,
        uploads.clone(),
        processed.clone(),
        Arc::new(MemoryScanner::new()),
        Arc::new(StandardCodec::default()),
        Quarantine::new(processed.clone(), "quarantine/"),
        WorkerConfig::new(UploadPolicy::images_and_pdf(16 << 20).unwrap())
            .with_receive(ReceiveOptions::default().with_wait(Duration::ZERO)),
    )
    .with_notifier(notifier.clone());
    let stats = worker.run_until_idle().await.unwrap();
    assert_eq!(stats.clean, 1, "{stats:?}");
    assert_eq!(
        notifier.notifications()[0].context.traceparent.as_deref(),
        Some(signed_tp.as_str()),
        "the notification carries the trace context on"
    );

    otlp.flush().unwrap();
    let spans = spans.lock().unwrap().clone();
    let presign: Vec<&Span> = spans.iter().filter(|s| s.name == "presign").collect();
    assert_eq!(presign.len(), 1, "{spans:#?}");
    let presign = presign[0];
    let trace_id = presign.trace_id.clone();
    assert_eq!(trace_id.len(), 32);
    // The signed context names the presign span.
    assert_eq!(
        signed_tp,
        format!("00-{}-{}-01", presign.trace_id, presign.span_id)
    );
    let process: Vec<&Span> = spans.iter().filter(|s| s.name == "process").collect();
    assert_eq!(process.len(), 1, "{spans:#?}");
    assert_eq!(process[0].trace_id, trace_id);
    assert_eq!(process[0].parent_span_id, presign.span_id);
    let in_trace: Vec<&str> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .map(|s| s.name.as_str())
        .collect();
    // The trace, for the eye (`--nocapture`).
    for s in spans.iter().filter(|s| s.trace_id == trace_id) {
        eprintln!(
            "trace {} span {} parent {:16} {}",
            s.trace_id, s.span_id, s.parent_span_id, s.name
        );
    }
    for name in [
        "presign", "process", "scan", "decode", "encode", "upload", "notify",
    ] {
        assert!(
            in_trace.contains(&name),
            "{name} is in the upload's trace: {in_trace:?} of {spans:#?}"
        );
    }
    otlp.shutdown().unwrap();
}
