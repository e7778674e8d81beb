//! MinIO's bucket notifications through NATS JetStream, end to end: the
//! test publishes the event JSON MinIO's `notify_nats` target sends (with
//! JetStream on) to the stream, the object sits in a local S3 server
//! (moto), and the ordinary `Worker` on a `NatsQueue` turns it into its
//! manifest and variants.
//!
//! The message is MinIO's `event.Log`: top-level `EventName`, `Key`
//! (`bucket/key`, not escaped) and `Records`, whose `eventName` keeps the
//! `s3:` prefix and whose `s3.object.key` is Go's `url.QueryEscape` of the
//! key (`/` is `%2F`, a space is `+`).
//!
//! `#[ignore]`d in plain `cargo test`; `scripts/test.sh` starts moto and
//! nats-server and sets `UPLOAD_SDK_MOTO_ENDPOINT` and
//! `UPLOAD_SDK_NATS_URL`. Without them they fail, never skip.

use std::sync::Arc;
use std::time::Duration;

use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::config::Credentials;
use upload_core::s3::{AwsSettings, S3Storage};
use upload_core::{ObjectKey, PutOptions, Storage, UploadPolicy};
use upload_pipeline::manifest::manifest_key;
use upload_pipeline::nats::{NatsQueue, NatsQueueConfig, async_nats};
use upload_pipeline::{Manifest, ReceiveOptions, StandardCodec, Worker, WorkerConfig};
use upload_scan::{MemoryScanner, Quarantine};

fn env(name: &str, service: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test.sh, which starts {service}")
    })
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Go's `url.QueryEscape`, as MinIO applies it to `s3.object.key`.
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The message MinIO publishes for a PUT of `key` into `bucket` (the shape
/// of MinIO's `event.Log` and `event.Event`).
fn minio_put_event(bucket: &str, key: &str, size: u64, etag: &str) -> String {
    serde_json::json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("{bucket}/{key}"),
        "Records": [{
            "eventVersion": "2.0",
            "eventSource": "minio:s3",
            "awsRegion": "",
            "eventTime": "2026-12-04T23:40:00.123Z",
            "eventName": "s3:ObjectCreated:Put",
            "userIdentity": {"principalId": "minioadmin"},
            "requestParameters": {
                "principalId": "minioadmin",
                "region": "",
                "sourceIPAddress": "127.0.0.1"
            },
            "responseElements": {
                "x-amz-id-2": "dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8",
                "x-amz-request-id": "187E0F2C8A6E1D5B",
                "x-minio-deployment-id": "6e0c2c0c-43d8-4c8a-8e11-2b0c3f5f9a11",
                "x-minio-origin-endpoint": "http://127.0.0.1:9000"
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "Config",
                "bucket": {
                    "name": bucket,
                    "ownerIdentity": {"principalId": "minioadmin"},
                    "arn": format!("arn:aws:s3:::{bucket}")
                },
                "object": {
                    "key": query_escape(key),
                    "size": size,
                    "eTag": etag,
                    "contentType": "image/png",
                    "userMetadata": {"content-type": "image/png"},
                    "sequencer": "187E0F2C8A8B3C1F"
                }
            },
            "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7.0.70"}
        }]
    })
    .to_string()
}

#[tokio::test]
#[ignore = "needs moto and nats-server: run scripts/test.sh"]
async fn the_worker_processes_minio_events_from_jetstream() {
    let settings = AwsSettings::local(env("UPLOAD_SDK_MOTO_ENDPOINT", "moto"));
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    let s3 = settings.s3_client(&sdk);
    let uploads = S3Storage::new(s3.clone(), unique("minio-up")).unwrap();
    uploads.create_bucket().await.unwrap();
    let processed = S3Storage::new(s3, unique("minio-out")).unwrap();
    processed.create_bucket().await.unwrap();

    let nats = async_nats::connect(env("UPLOAD_SDK_NATS_URL", "nats-server"))
        .await
        .expect("connect to nats-server");
    let name = unique("minio");
    let dlq_config = NatsQueueConfig::new(
        format!("{}-DLQ", name.to_uppercase()),
        format!("minio.{name}.dlq"),
        "worker",
    );
    let dlq = NatsQueue::create(nats.clone(), &dlq_config).await.unwrap();
    let config = NatsQueueConfig::new(name.to_uppercase(), format!("minio.{name}"), "worker")
        .with_visibility_timeout(Duration::from_secs(10))
        .with_redrive(3, dlq_config.subject.clone());
    let q = Arc::new(NatsQueue::create(nats.clone(), &config).await.unwrap());

    // Two PNGs, one with a key that needs MinIO's escaping.
    let keys = ["uploads/u1/plain.png", "uploads/u 2/my photo+1 ✓.png"];
    for (i, k) in keys.iter().enumerate() {
        let key = ObjectKey::new(*k).unwrap();
        let png = upload_pipeline::testkit::codec::png_pattern(40, 30, i as u32);
        let meta = uploads
            .put(
                &key,
                png.into(),
                PutOptions::default().with_content_type("image/png"),
            )
            .await
            .unwrap();
        // MinIO publishes with a JetStream publish, as the test does here.
        let body = minio_put_event(Storage::bucket(&uploads), k, meta.size, &meta.etag);
        let js = async_nats::jetstream::new(nats.clone());
        js.publish(config.subject.clone(), body.into())
            .await
            .unwrap()
            .await
            .expect("the stream captures MinIO's subject");
    }

    let uploads = Arc::new(uploads);
    let worker = Worker::new(
        q.clone(),
        uploads.clone(),
        Arc::new(processed.clone()),
        Arc::new(MemoryScanner::new()),
        Arc::new(StandardCodec::default()),
        Quarantine::new(uploads.clone(), "quarantine/"),
        WorkerConfig::new(UploadPolicy::images_and_pdf(1 << 20).unwrap())
            .with_receive(ReceiveOptions::default().with_wait(Duration::from_secs(1))),
    );
    let stats = worker.run_until_idle().await.expect("worker run");
    assert_eq!(
        (stats.messages, stats.clean, stats.retried),
        (2, 2, 0),
        "{stats:?}"
    );

    for k in keys {
        let key = ObjectKey::new(k).unwrap();
        let got = processed.get(&manifest_key(&key).unwrap()).await.unwrap();
        let m: Manifest = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(m.source.key, key, "decoded exactly once");
        assert_eq!(m.source.etag, uploads.head(&key).await.unwrap().etag);
        assert_eq!(m.variants.len(), 2, "{k}: {m:?}");
        for v in &m.variants {
            let body = processed.get(&v.key).await.unwrap();
            assert_eq!(body.body.len() as u64, v.bytes, "{}", v.key);
        }
    }
    assert_eq!(
        q.approximate_len().await.unwrap(),
        0,
        "deleted from the stream"
    );
    assert_eq!(
        dlq.approximate_len().await.unwrap(),
        0,
        "nothing dead-lettered"
    );
}
