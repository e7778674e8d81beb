//! The deployment doctor on moto (S3 + SQS) and the test clamd: a setup
//! made by `deploy::setup` passes every check; a broken one fails exactly
//! the broken items, each with its fix.
//!
//! `#[ignore]`d in plain `cargo test`; `scripts/test.sh` starts moto and
//! clamd, sets `UPLOAD_SDK_MOTO_ENDPOINT` and `UPLOAD_SDK_CLAMD_TCP` and
//! runs them. Without them they fail, never skip.
//!
//! moto limits: moto evaluates bucket policies without their conditions,
//! so the deny-unscanned-reads check reads the policy document (as it does
//! on AWS) rather than trying a read; the round trip relies on moto
//! delivering bucket notifications to SQS, which it does.

use std::collections::BTreeMap;
use std::time::Duration;

use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::config::Credentials;
use upload_core::s3::aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use upload_core::s3::{AwsSettings, S3Storage, SdkConfig};
use upload_core::{Bytes, EventMessage, ObjectKey, PutOptions, Storage, parse_event_message};
use upload_pipeline::deploy::doctor::clamd_check;
use upload_pipeline::deploy::{CheckStatus, Doctor, DoctorConfig, SetupPlan, setup};
use upload_pipeline::sqs::{QueueSettings, SqsQueue, sqs_client};
use upload_pipeline::{Queue, ReceiveOptions};
use upload_scan::ClamdAddress;

fn settings() -> AwsSettings {
    let endpoint = std::env::var("UPLOAD_SDK_MOTO_ENDPOINT")
        .expect("UPLOAD_SDK_MOTO_ENDPOINT is not set: run scripts/test.sh, which starts moto");
    AwsSettings::local(endpoint)
}

async fn sdk() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

const ORIGIN: &str = "http://app.example.test";

fn statuses(report: &upload_pipeline::deploy::Report) -> BTreeMap<&'static str, CheckStatus> {
    report.checks.iter().map(|c| (c.name, c.status)).collect()
}

#[tokio::test]
#[ignore = "needs moto: run scripts/test.sh"]
async fn a_setup_made_by_deploy_setup_passes_every_check() {
    let (settings, sdk) = (settings(), sdk().await);
    let plan = SetupPlan {
        uploads_bucket: unique("doc-up"),
        processed_bucket: unique("doc-done"),
        queue_name: unique("doc-events"),
        max_receive_count: 5,
        visibility_timeout: Duration::from_secs(60),
        prefix: "uploads/".into(),
        cors_origins: vec![ORIGIN.into()],
        abort_incomplete_days: 7,
        enable_versioning: true,
        deny_unscanned_reads: true,
        worker_principal_arns: vec!["arn:aws:iam::123456789012:role/upload-worker".into()],
        require_create_only_uploads: false,
    };
    let made = setup(&settings, &sdk, &plan).await.unwrap();
    // A real upload's event waits in the queue: the doctor must leave it.
    let uploads = S3Storage::new(settings.s3_client(&sdk), &plan.uploads_bucket).unwrap();
    let real = ObjectKey::new("uploads/alice/real.txt").unwrap();
    uploads
        .put(&real, Bytes::from_static(b"hello"), PutOptions::default())
        .await
        .unwrap();

    let config = DoctorConfig::new(
        &plan.uploads_bucket,
        &plan.processed_bucket,
        &plan.queue_name,
    )
    .with_app_origins([ORIGIN])
    .with_probe_timeout(Duration::from_secs(10));
    let report = Doctor::new(&settings, &sdk, config).check().await;
    let text = report.render_text();
    assert!(report.passed(), "{text}");
    let want: BTreeMap<&str, CheckStatus> = [
        "buckets",
        "queue",
        "cors",
        "lifecycle",
        "versioning",
        "deny-unscanned-reads",
        "queue-redrive",
        "queue-policy",
        "bucket-notifications",
        "notification-round-trip",
    ]
    .into_iter()
    .map(|n| (n, CheckStatus::Pass))
    .chain([("clamd", CheckStatus::Skipped)])
    .collect();
    assert_eq!(statuses(&report), want, "{text}");
    assert_eq!(report.count(CheckStatus::Fail), 0);
    let rt = report.get("notification-round-trip").unwrap();
    assert!(
        rt.detail.contains("received by the doctor"),
        "{}",
        rt.detail
    );
    assert_eq!(
        report.get("queue").unwrap().detail,
        format!(
            "{} (arn:aws:sqs:us-east-1:123456789012:{})",
            made.queue_url, plan.queue_name
        )
    );
    assert_eq!(
        report.get("lifecycle").unwrap().detail,
        "incomplete multipart uploads are aborted after 7 days (rule upload-sdk-abort-incomplete-multipart)"
    );
    assert!(
        text.ends_with("10 passed, 0 warnings, 0 failed, 1 skipped\n"),
        "{text}"
    );

    // The probe is gone, and the real upload's event is still there.
    assert!(
        uploads
            .list("uploads/.upload-doctor/")
            .await
            .unwrap()
            .is_empty(),
        "the probe was left behind"
    );
    let queue = SqsQueue::new(sqs_client(&settings, &sdk), &made.queue_url);
    let mut seen = Vec::new();
    for _ in 0..3 {
        for m in queue
            .receive(&ReceiveOptions::default().with_wait(Duration::from_secs(1)))
            .await
            .unwrap()
        {
            if let Ok(EventMessage::Records(r)) = parse_event_message(&m.body) {
                // Keys in records are URL-encoded: `key()` decodes them.
                seen.extend(r.iter().map(|r| {
                    let key = r.key().map(|k| k.as_str().to_owned());
                    (r.event_name.clone(), key.unwrap_or_default())
                }));
            }
        }
    }
    assert!(
        seen.iter()
            .any(|(e, k)| e.starts_with("ObjectCreated") && k == "uploads/alice/real.txt"),
        "the real upload's event was consumed: {seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|(e, k)| e.starts_with("ObjectCreated") && k.contains(".upload-doctor")),
        "the probe's event was left: {seen:?}"
    );
}

#[tokio::test]
#[ignore = "needs moto: run scripts/test.sh"]
async fn a_broken_setup_fails_exactly_the_broken_items_with_their_fixes() {
    let (settings, sdk) = (settings(), sdk().await);
    let s3 = settings.s3_client(&sdk);
    let (up, done) = (unique("doc-bad-up"), unique("doc-bad-done"));
    for b in [&up, &done] {
        S3Storage::new(s3.clone(), b.as_str())
            .unwrap()
            .create_bucket()
            .await
            .unwrap();
    }
    // CORS for the origin, without ExposeHeaders ETag.
    s3.put_bucket_cors()
        .bucket(&up)
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(
                    CorsRule::builder()
                        .allowed_origins(ORIGIN)
                        .allowed_methods("PUT")
                        .allowed_headers("*")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // A queue without redrive policy, not connected to the bucket; no
    // lifecycle rule, no bucket policy.
    let queue_name = unique("doc-bad-events");
    let queue = SqsQueue::create(
        sqs_client(&settings, &sdk),
        &queue_name,
        &QueueSettings::default(),
    )
    .await
    .unwrap();

    let config = DoctorConfig::new(&up, &done, queue.url()).with_app_origins([ORIGIN]);
    let report = Doctor::new(&settings, &sdk, config).check().await;
    let text = report.render_text();
    assert!(!report.passed(), "{text}");
    use CheckStatus::{Fail, Pass, Skipped, Warn};
    let want = BTreeMap::from([
        ("buckets", Pass),
        ("queue", Pass),
        ("cors", Fail),
        ("lifecycle", Fail),
        ("versioning", Warn),
        ("deny-unscanned-reads", Fail),
        ("queue-redrive", Fail),
        ("queue-policy", Fail),
        ("bucket-notifications", Fail),
        ("notification-round-trip", Skipped),
        ("clamd", Skipped),
    ]);
    assert_eq!(statuses(&report), want, "{text}");
    for c in &report.checks {
        assert_eq!(
            c.fix.is_some(),
            matches!(c.status, Fail | Warn),
            "{}: {:?}",
            c.name,
            c.fix
        );
    }
    let detail = |n: &str| report.get(n).unwrap().detail.clone();
    let fix = |n: &str| report.get(n).unwrap().fix.clone().unwrap();
    assert_eq!(
        detail("cors"),
        format!(
            "the CORS rule for {ORIGIN} lacks ExposeHeaders ETag (browsers cannot complete multipart uploads without it)"
        )
    );
    assert!(fix("cors").contains(&format!("--cors-origin {ORIGIN}")));
    assert!(fix("lifecycle").contains("--abort-incomplete-days"));
    assert_eq!(
        detail("deny-unscanned-reads"),
        "the uploads bucket has no policy: objects are readable before they are scanned"
    );
    assert!(fix("deny-unscanned-reads").contains("--worker-principal-arn"));
    assert!(detail("queue-redrive").starts_with("the queue has no redrive policy"));
    assert!(fix("queue-redrive").contains("RedrivePolicy"));
    assert!(
        detail("bucket-notifications")
            .starts_with("the uploads bucket sends no events to arn:aws:sqs:")
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("       fix: "))
            .count(),
        7,
        "{text}"
    );
    assert!(
        text.ends_with("2 passed, 1 warning, 6 failed, 2 skipped\n"),
        "{text}"
    );
}

#[tokio::test]
#[ignore = "needs clamd: run scripts/test.sh"]
async fn clamd_check_on_the_running_clamd_and_an_unreachable_address() {
    let addr = std::env::var("UPLOAD_SDK_CLAMD_TCP")
        .expect("UPLOAD_SDK_CLAMD_TCP is not set: run scripts/test.sh, which starts clamd");
    let two_days = Duration::from_secs(2 * 86_400);
    let c = clamd_check(&ClamdAddress::Tcp(addr), two_days).await;
    // The test clamd (scripts/clamd.sh) loads only the project's local
    // signatures: it answers, with no official database date, which is a
    // warning, not a failure. With the official databases the date is
    // read (unit tests of `clamd_version_check`).
    assert_eq!(c.status, CheckStatus::Warn, "{c:?}");
    assert!(
        c.detail.starts_with("clamd answers (ClamAV "),
        "{}",
        c.detail
    );
    assert!(
        c.detail
            .ends_with("reports no database date: no official database is loaded")
    );
    assert!(c.fix.unwrap().contains("freshclam"));

    // Port 9 (discard) on loopback: nothing listens there.
    let c = clamd_check(&ClamdAddress::Tcp("127.0.0.1:9".into()), two_days).await;
    assert_eq!(c.status, CheckStatus::Fail, "{c:?}");
    assert!(
        c.detail
            .starts_with("clamd at tcp://127.0.0.1:9 does not answer"),
        "{}",
        c.detail
    );
    assert!(c.fix.unwrap().starts_with("start clamd"));
}
