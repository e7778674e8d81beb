//! The `lambda-worker` binary end to end: a test double of the Lambda
//! Runtime API (the documented `2018-06-01` routes, on 127.0.0.1) runs the
//! real binary as Lambda's `provided.al2023` runtime would, and hands it
//! SQS-triggered invocations made of the real S3 event messages that moto
//! delivered to the queue `upload-setup` wired; clamd scans.
//!
//! A batch of a clean JPEG, an EICAR file and an object that the worker
//! may not read (a bucket policy denies `s3:GetObject` under
//! `uploads/locked/`) answers with exactly the locked message in
//! `batchItemFailures`; the clean and infected ones are processed and
//! quarantined. The function deletes nothing (every message is still in
//! flight on the queue). The clean message delivered again writes nothing.
//!
//! `#[ignore]`d in plain `cargo test`; `scripts/test.sh` starts moto and
//! clamd and sets `UPLOAD_SDK_MOTO_ENDPOINT` and `UPLOAD_SDK_CLAMD_TCP`.
//! Without them it fails, never skips.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::{Notify, oneshot};
use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::config::Credentials;
use upload_core::s3::{AwsSettings, S3Storage};
use upload_core::{Bytes, ObjectKey, PutOptions, Storage};
use upload_pipeline::manifest::manifest_key;
use upload_pipeline::sqs::{SqsQueue, sqs_client};
use upload_pipeline::{Manifest, Outcome, Queue, QueueMessage, ReceiveOptions};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test.sh, which starts moto and clamd")
    })
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the function answered to one invocation.
#[derive(Debug)]
enum Answer {
    /// `POST /runtime/invocation/{id}/response`.
    Response(serde_json::Value),
    /// `POST /runtime/invocation/{id}/error`.
    Error(serde_json::Value),
}

/// The state of the Runtime API double.
#[derive(Default)]
struct Runtime {
    /// Invocations not yet fetched by `next`: request ID and payload.
    pending: Mutex<VecDeque<(String, serde_json::Value)>>,
    arrived: Notify,
    /// Waiting callers, by request ID.
    answers: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    /// Bodies of `POST /runtime/init/error`.
    init_errors: Mutex<Vec<serde_json::Value>>,
    /// `next` calls served.
    polls: Mutex<u32>,
}

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:upload-worker";

/// `GET /2018-06-01/runtime/invocation/next`: waits for an invocation,
/// answers with its payload and the documented headers.
async fn next(State(rt): State<Arc<Runtime>>) -> impl IntoResponse {
    let (id, payload) = loop {
        let notified = rt.arrived.notified();
        if let Some(p) = rt.pending.lock().unwrap().pop_front() {
            break p;
        }
        notified.await;
    };
    *rt.polls.lock().unwrap() += 1;
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 300_000;
    let mut h = HeaderMap::new();
    h.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_str(&id).unwrap(),
    );
    h.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline.to_string()).unwrap(),
    );
    h.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static(FUNCTION_ARN),
    );
    h.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        ),
    );
    h.insert("content-type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, h, payload.to_string())
}

fn answered(rt: &Runtime, id: &str, answer: Answer) -> StatusCode {
    match rt.answers.lock().unwrap().remove(id) {
        Some(tx) => {
            let _ = tx.send(answer);
            StatusCode::ACCEPTED
        }
        // The documented answer to an unknown or already answered ID.
        None => StatusCode::BAD_REQUEST,
    }
}

/// `POST /2018-06-01/runtime/invocation/{id}/response`.
async fn response(
    State(rt): State<Arc<Runtime>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    answered(&rt, &id, Answer::Response(v))
}

/// `POST /2018-06-01/runtime/invocation/{id}/error`.
async fn error(State(rt): State<Arc<Runtime>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    answered(&rt, &id, Answer::Error(v))
}

/// `POST /2018-06-01/runtime/init/error`.
async fn init_error(State(rt): State<Arc<Runtime>>, body: Bytes) -> StatusCode {
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    rt.init_errors.lock().unwrap().push(v);
    StatusCode::ACCEPTED
}

/// Serves the Runtime API double on 127.0.0.1; its `host:port`.
async fn runtime_api(rt: Arc<Runtime>) -> String {
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(rt);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Invokes the function with `payload`; its answer within 120 s.
async fn invoke(rt: &Runtime, payload: serde_json::Value) -> Answer {
    let id = uuid::Uuid::new_v4().to_string();
    let (tx, rx) = oneshot::channel();
    rt.answers.lock().unwrap().insert(id.clone(), tx);
    rt.pending.lock().unwrap().push_back((id, payload));
    rt.arrived.notify_waiters();
    tokio::time::timeout(Duration::from_secs(120), rx)
        .await
        .expect("the function answers within 120 s")
        .expect("answered")
}

/// The SQS event Lambda's event source mapping makes of `messages`.
fn sqs_event(messages: &[&QueueMessage], queue_arn: &str) -> serde_json::Value {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            serde_json::json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": {
                    "ApproximateReceiveCount": m.receive_count.to_string(),
                    "SentTimestamp": "1733328000000",
                    "SenderId": "AROAIWPX5BD2BHG722MW4:s3",
                    "ApproximateFirstReceiveTimestamp": "1733328000001"
                },
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// Receives from `queue` until a message names each of `keys` (the S3
/// events of their uploads); also returns the others (`s3:TestEvent`).
async fn events_for(queue: &SqsQueue, keys: &[&str]) -> (Vec<QueueMessage>, Vec<QueueMessage>) {
    let mut found: BTreeMap<usize, QueueMessage> = BTreeMap::new();
    let mut others = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while found.len() < keys.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "S3 events of {keys:?} not on the queue within 30 s (found {}; others: {:?})",
            found.len(),
            others
                .iter()
                .map(|m: &QueueMessage| &m.body)
                .collect::<Vec<_>>()
        );
        let got = queue
            .receive(
                &ReceiveOptions::default()
                    .with_max_messages(10)
                    .with_wait(Duration::from_secs(1)),
            )
            .await
            .unwrap();
        for m in got {
            // Keys in S3 events are URL-encoded (`uploads%2Fu%2F...`).
            let created = match upload_core::parse_event_message(&m.body) {
                Ok(upload_core::EventMessage::Records(r))
                    if r.len() == 1 && r[0].event_name.starts_with("ObjectCreated:") =>
                {
                    r[0].key().ok().map(|k| k.as_str().to_owned())
                }
                _ => None,
            };
            match keys.iter().position(|k| created.as_deref() == Some(*k)) {
                Some(i) => {
                    found.insert(i, m);
                }
                None => others.push(m),
            }
        }
    }
    (found.into_values().collect(), others)
}

/// Every object of `store` with its ETag and last-modified time.
async fn snapshot(store: &S3Storage) -> Vec<(String, String, SystemTime)> {
    let mut all: Vec<_> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.key.as_str().to_owned(), m.etag, m.last_modified))
        .collect();
    all.sort();
    all
}

async fn manifest(store: &S3Storage, key: &str) -> Manifest {
    let got = store
        .get(&manifest_key(&ObjectKey::new(key).unwrap()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("manifest of {key}: {e}"));
    serde_json::from_slice(&got.body).unwrap()
}

fn lambda_worker(endpoint: &str, clamd: &str, uploads: &str, processed: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lambda-worker"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("UPLOAD_ENDPOINT_URL", endpoint)
        .env("UPLOAD_UPLOADS_BUCKET", uploads)
        .env("UPLOAD_PROCESSED_BUCKET", processed)
        .env("UPLOAD_CLAMD", clamd)
        .env("UPLOAD_MAX_IN_FLIGHT", "3")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    c
}

#[test]
fn lambda_worker_outside_lambda_says_so() {
    let out = lambda_worker("http://127.0.0.1:9", "127.0.0.1:9", "uploads", "processed")
        .output()
        .expect("lambda-worker runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not running under AWS Lambda: AWS_LAMBDA_RUNTIME_API is not set"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto and clamd: run scripts/test.sh"]
async fn sqs_batches_through_the_lambda_runtime_api_report_only_failed_messages() {
    let endpoint = env("UPLOAD_SDK_MOTO_ENDPOINT");
    let clamd = env("UPLOAD_SDK_CLAMD_TCP");
    let run = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let (uploads_bucket, processed_bucket) = (
        format!("lambda-uploads-{run}"),
        format!("lambda-processed-{run}"),
    );

    // Buckets, queue + DLQ and the S3 -> SQS notifications, as for the
    // `worker`; the queue is what Lambda's event source mapping would poll.
    let out = Command::new(env!("CARGO_BIN_EXE_upload-setup"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .args(["--endpoint-url", &endpoint, "--region", "us-east-1"])
        .args(["--uploads-bucket", &uploads_bucket])
        .args(["--processed-bucket", &processed_bucket])
        .args(["--queue-name", &format!("lambda-{run}")])
        .arg("--allow-unscanned-reads")
        .output()
        .expect("upload-setup runs");
    assert!(
        out.status.success(),
        "upload-setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let setup: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let queue_url = setup["queue_url"].as_str().unwrap().to_owned();
    let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:lambda-{run}");

    let settings = AwsSettings::local(&endpoint);
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    let s3 = settings.s3_client(&sdk);
    let uploads = S3Storage::new(s3.clone(), &uploads_bucket).unwrap();
    let processed = S3Storage::new(s3, &processed_bucket).unwrap();
    let queue = SqsQueue::new(sqs_client(&settings, &sdk), &queue_url);
    // What the function's role may not read (moto applies the statement;
    // it would be a misconfigured role or policy on AWS).
    uploads
        .put_bucket_policy(
            &serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "LockedUploads",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": format!("arn:aws:s3:::{uploads_bucket}/uploads/locked/*")
                }]
            })
            .to_string(),
        )
        .await
        .unwrap();

    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/testdata/hopper.jpg"
    ))
    .unwrap();
    let (clean_key, infected_key, locked_key) = (
        "uploads/u/hopper.jpg",
        "uploads/u/eicar.jpg",
        "uploads/locked/hopper.jpg",
    );
    for (key, body) in [
        (clean_key, photo.clone()),
        (infected_key, upload_scan::eicar().to_vec()),
        (locked_key, photo.clone()),
    ] {
        uploads
            .put(
                &ObjectKey::new(key).unwrap(),
                Bytes::from(body),
                PutOptions::default().with_content_type("image/jpeg"),
            )
            .await
            .unwrap();
    }
    let (events, others) = events_for(&queue, &[clean_key, infected_key, locked_key]).await;
    for e in &events {
        assert!(e.body.contains("ObjectCreated:Put"), "{}", e.body);
    }
    let (clean, infected, locked) = (&events[0], &events[1], &events[2]);

    // The function, under the Runtime API double.
    let rt = Arc::new(Runtime::default());
    let api = runtime_api(rt.clone()).await;
    let _function = Proc(
        lambda_worker(&endpoint, &clamd, &uploads_bucket, &processed_bucket)
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "upload-worker")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/upload-worker")
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2024/12/04/[$LATEST]0123456789abcdef",
            )
            .env("_HANDLER", "bootstrap")
            .spawn()
            .expect("lambda-worker starts"),
    );

    // 1. One batch: clean, infected, unreadable (and any s3:TestEvent).
    let mut batch: Vec<&QueueMessage> = vec![clean, infected, locked];
    batch.extend(others.iter());
    let answer = invoke(&rt, sqs_event(&batch, &queue_arn)).await;
    let Answer::Response(body) = answer else {
        panic!("an invocation error: {answer:?}");
    };
    assert_eq!(
        body,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": locked.message_id}]}),
        "only the unreadable upload's message failed"
    );
    let m = manifest(&processed, clean_key).await;
    assert_eq!(m.verdict, Outcome::Clean, "{m:?}");
    let names: Vec<&str> = m.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["thumb", "medium"]);
    for v in &m.variants {
        let got = processed.get(&v.key).await.unwrap();
        assert!(got.body.starts_with(b"RIFF") && &got.body[8..12] == b"WEBP");
        assert_eq!(got.body.len() as u64, v.bytes);
    }
    let m = manifest(&processed, infected_key).await;
    assert_eq!(m.verdict, Outcome::Infected, "{m:?}");
    assert!(
        m.signature
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("eicar"),
        "{m:?}"
    );
    let q = m.quarantine.expect("quarantined");
    assert_eq!(q.key.as_str(), "quarantine/uploads/u/eicar.jpg");
    assert!(
        matches!(
            uploads.head(&ObjectKey::new(infected_key).unwrap()).await,
            Err(upload_core::Error::NotFound { .. })
        ),
        "the infected original left the uploads prefix"
    );
    assert!(
        processed
            .head(&manifest_key(&ObjectKey::new(locked_key).unwrap()).unwrap())
            .await
            .is_err(),
        "nothing written for the failed upload"
    );
    // The function deleted nothing: every message of the batch is still
    // on the queue (in flight), so its visibility can be changed.
    for m in &batch {
        queue
            .change_visibility(&m.receipt_handle, Duration::ZERO)
            .await
            .unwrap_or_else(|e| panic!("message {} is gone: {e}", m.message_id));
    }

    // 2. Redelivered (as after a timeout): the clean message writes
    // nothing new; the locked one fails again.
    let before = snapshot(&processed).await;
    let (again, _) = events_for(&queue, &[clean_key, locked_key]).await;
    assert_eq!(again[0].message_id, clean.message_id, "the same message");
    assert!(again[0].receive_count >= 2, "{:?}", again[0]);
    let answer = invoke(&rt, sqs_event(&[&again[0], &again[1]], &queue_arn)).await;
    let Answer::Response(body) = answer else {
        panic!("an invocation error: {answer:?}");
    };
    assert_eq!(
        body,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": locked.message_id}]})
    );
    assert_eq!(snapshot(&processed).await, before, "no new writes");

    // 3. A payload that is not an SQS event: an invocation error, and the
    // function goes on to the next invocation.
    let answer = invoke(&rt, serde_json::json!({"Records": "nope"})).await;
    let Answer::Error(err) = answer else {
        panic!("not an invocation error: {answer:?}");
    };
    assert!(
        err["errorType"].is_string() && err["errorMessage"].is_string(),
        "the documented error shape: {err}"
    );
    let answer = invoke(&rt, sqs_event(&[], &queue_arn)).await;
    let Answer::Response(body) = answer else {
        panic!("an invocation error: {answer:?}");
    };
    assert_eq!(body, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(*rt.polls.lock().unwrap(), 4);
    assert!(rt.init_errors.lock().unwrap().is_empty());
}
