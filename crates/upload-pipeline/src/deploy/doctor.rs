//! The deployment doctor: [`Doctor::check`] inspects a live deployment and
//! returns a [`Report`] with one [`Check`] per item, each failure with the
//! fix.
//!
//! | check | passes when |
//! |---|---|
//! | `buckets` | the uploads and processed buckets exist and answer (HeadBucket) |
//! | `queue` | the event queue exists (its URL and ARN) |
//! | `cors` | for every app origin, a CORS rule of the uploads bucket allows it to `PUT` with the headers of a presigned upload (`*`, or `Content-Type`, `If-None-Match` and `x-amz-meta-*`) and exposes `ETag` |
//! | `lifecycle` | an enabled lifecycle rule covering the prefix aborts incomplete multipart uploads |
//! | `versioning` | versioning is `Enabled` (warns otherwise) |
//! | `deny-unscanned-reads` | the bucket policy has a `Deny` of `s3:GetObject` (and `s3:GetObjectVersion`) to `*` on the prefix unless `s3:ExistingObjectTag/scan-status` is `CLEAN` |
//! | `queue-redrive` | the queue has a redrive policy to a dead-letter queue that exists |
//! | `queue-policy` | the queue policy lets `s3.amazonaws.com` `sqs:SendMessage` from the uploads bucket |
//! | `bucket-notifications` | the uploads bucket sends `s3:ObjectCreated:*` for the prefix to the queue |
//! | `notification-round-trip` | a probe object's event reaches the queue (below) |
//! | `clamd` | clamd answers `VERSION`; warns when its database is older than the configured age or unknown |
//!
//! The policy checks read the documents the services return; they do not
//! try the access itself (the doctor's own credentials are usually an
//! administrator's, and local servers such as moto ignore policy
//! conditions).
//!
//! # The notification round trip
//!
//! The doctor writes a small probe object
//! `{prefix}.upload-doctor/probe-{uuid}` (create-only, `text/plain`), then
//! for up to [`DoctorConfig::probe_timeout`]:
//!
//! - reads the probe's tags: a running worker that received the event
//!   first tags it `upload-doctor=received` without processing it (no
//!   scan, manifest, variants or notification: see
//!   [`crate::worker::probe`]) and deletes the message;
//! - receives from the queue itself with a short visibility timeout (5 s):
//!   the probe's message is deleted; every other message is made visible
//!   again at once (`ChangeMessageVisibility` 0), so no real event is
//!   consumed.
//!
//! The probe object is then deleted (by version in a versioned bucket);
//! its ObjectRemoved event is left for the worker, which skips it.
//!
//! Trade-offs: receiving a real message while checking raises its
//! `ApproximateReceiveCount` by one, which counts toward the redrive
//! policy's `maxReceiveCount` (a message one receive away from the
//! dead-letter queue can be dead-lettered one attempt early), and delays
//! it by the time of one round trip. Re-putting the notification
//! configuration to get an `s3:TestEvent` would avoid that but rewrites
//! live configuration; turn the round trip off
//! ([`DoctorConfig::with_round_trip`]) where neither is acceptable.
//! An older worker that does not know probes processes the probe as an
//! upload (rejected as `text/plain` by most policies).

use std::fmt::Write as _;
use std::time::Duration;

use aws_sdk_s3::types::{CorsRule, LifecycleRule, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use upload_core::s3::{AwsSettings, S3Storage, SdkConfig};
use upload_core::{EventMessage, ObjectKey, PutOptions, Storage, parse_event_message};
use upload_scan::{ClamdAddress, ClamdConfig, ClamdScanner};

use super::iam::IamScope;
use crate::queue::{Queue, ReceiveOptions};
use crate::sqs::{SqsQueue, notification_configuration, queue_url, sqs_client};
use crate::worker::probe::{PROBE_ACK_TAG, PROBE_ACK_VALUE, probe_key};

/// The outcome of one [`Check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// As it should be.
    Pass,
    /// Works, but weaker than recommended (e.g. versioning off, an old
    /// virus database).
    Warn,
    /// Broken: uploads, events or safety depend on it. The check's `fix`
    /// says what to do.
    Fail,
    /// Not checked: not configured (no app origin, no clamd address) or
    /// blocked by an earlier failure.
    Skipped,
}

impl CheckStatus {
    /// The label of the text checklist: `PASS`, `WARN`, `FAIL`, `SKIP`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Skipped => "SKIP",
        }
    }
}

/// One item of a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier, e.g. `cors` or `queue-redrive` (the table in
    /// the [module docs](self)).
    pub name: &'static str,
    /// The outcome.
    pub status: CheckStatus,
    /// What was found, in one sentence.
    pub detail: String,
    /// What to do, for [`CheckStatus::Fail`] and [`CheckStatus::Warn`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: CheckStatus::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A warning with its fix.
    pub fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: CheckStatus::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A failure with its fix.
    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: CheckStatus::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A check not made, and why.
    pub fn skipped(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: CheckStatus::Skipped,
            detail: detail.into(),
            fix: None,
        }
    }
}

/// Every check of one [`Doctor::check`] run, in a fixed order.
///
/// Serialises as `{"passed": bool, "checks": [{"name", "status", "detail",
/// "fix"?}, ...]}` with `status` one of `pass`, `warn`, `fail`, `skipped`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("Report", 2)?;
        st.serialize_field("passed", &self.passed())?;
        st.serialize_field("checks", &self.checks)?;
        st.end()
    }
}

impl Report {
    /// True when no check failed (warnings and skipped checks pass).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != CheckStatus::Fail)
    }

    /// The check named `name`, if the report has it.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// How many checks have `status`.
    pub fn count(&self, status: CheckStatus) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The checklist as text: one line per check (`[PASS] name: detail`),
    /// the fix indented under each failure and warning, then a summary
    /// line (`3 passed, 1 warning, 1 failed, 0 skipped`).
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let _ = writeln!(out, "[{}] {}: {}", c.status.label(), c.name, c.detail);
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "       fix: {fix}");
            }
        }
        let _ = writeln!(
            out,
            "{} passed, {} warning{}, {} failed, {} skipped",
            self.count(CheckStatus::Pass),
            self.count(CheckStatus::Warn),
            if self.count(CheckStatus::Warn) == 1 {
                ""
            } else {
                "s"
            },
            self.count(CheckStatus::Fail),
            self.count(CheckStatus::Skipped),
        );
        out
    }
}

/// What a deployment is meant to be: the values given to
/// [`super::setup`] (or to the `upload-setup` binary).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DoctorConfig {
    /// Bucket clients upload into.
    pub uploads_bucket: String,
    /// Bucket of variants and manifests.
    pub processed_bucket: String,
    /// The event queue: its URL (`https://...`), or its name.
    pub queue: String,
    /// Browser origins that upload (CORS); none skips the CORS check.
    pub app_origins: Vec<String>,
    /// Key prefix of uploads, the notification filter (default
    /// `uploads/`).
    pub prefix: String,
    /// clamd's address; `None` skips the clamd check.
    pub clamd: Option<ClamdAddress>,
    /// A clamd database older than this is a warning (default 2 days:
    /// freshclam updates several times a day).
    pub clamd_max_database_age: Duration,
    /// Run the notification round trip (default on; see the
    /// [module docs](self) for its trade-offs).
    pub round_trip: bool,
    /// How long the round trip waits for the probe's event (default 20 s).
    pub probe_timeout: Duration,
}

impl DoctorConfig {
    /// The deployment of these buckets and queue (URL or name), with the
    /// defaults: prefix `uploads/`, no app origin, no clamd, round trip on
    /// with a 20 s timeout, database age 2 days.
    pub fn new(
        uploads_bucket: impl Into<String>,
        processed_bucket: impl Into<String>,
        queue: impl Into<String>,
    ) -> Self {
        Self {
            uploads_bucket: uploads_bucket.into(),
            processed_bucket: processed_bucket.into(),
            queue: queue.into(),
            app_origins: Vec::new(),
            prefix: "uploads/".into(),
            clamd: None,
            clamd_max_database_age: Duration::from_secs(2 * 24 * 3600),
            round_trip: true,
            probe_timeout: Duration::from_secs(20),
        }
    }

    /// Sets the browser origins whose uploads CORS must allow.
    pub fn with_app_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.app_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the uploads key prefix (may be empty: the whole bucket).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Checks clamd at `address`.
    pub fn with_clamd(mut self, address: ClamdAddress) -> Self {
        self.clamd = Some(address);
        self
    }

    /// Sets the age past which the clamd database is a warning.
    pub fn with_clamd_max_database_age(mut self, age: Duration) -> Self {
        self.clamd_max_database_age = age;
        self
    }

    /// Runs the notification round trip, or not.
    pub fn with_round_trip(mut self, on: bool) -> Self {
        self.round_trip = on;
        self
    }

    /// Sets how long the round trip waits for the probe's event.
    pub fn with_probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }
}

/// Checks a live deployment; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Doctor {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    config: DoctorConfig,
}

/// Fix hint shared by most checks.
const SETUP_HINT: &str =
    "run upload-setup (upload_pipeline::deploy::setup) with the deployment's values";

impl Doctor {
    /// A doctor on the S3 and SQS endpoints of `settings`/`sdk`.
    pub fn new(settings: &AwsSettings, sdk: &SdkConfig, config: DoctorConfig) -> Self {
        Self::with_clients(settings.s3_client(sdk), sqs_client(settings, sdk), config)
    }

    /// A doctor on these clients.
    pub fn with_clients(
        s3: aws_sdk_s3::Client,
        sqs: aws_sdk_sqs::Client,
        config: DoctorConfig,
    ) -> Self {
        Self { s3, sqs, config }
    }

    /// The configuration checked.
    pub fn config(&self) -> &DoctorConfig {
        &self.config
    }

    /// Runs every check. Never fails: an error reaching a service is the
    /// failed check's detail. Takes up to [`DoctorConfig::probe_timeout`]
    /// more when the round trip gets no event.
    pub async fn check(&self) -> Report {
        let c = &self.config;
        let mut checks = Vec::new();

        // Buckets.
        let uploads = S3Storage::new(self.s3.clone(), &c.uploads_bucket);
        let mut missing = Vec::new();
        for b in [&c.uploads_bucket, &c.processed_bucket] {
            if let Err(e) = self.s3.head_bucket().bucket(b).send().await {
                let e = upload_core::s3::S3ErrorContext {
                    operation: "HeadBucket",
                    bucket: b,
                    key: "",
                    upload_id: None,
                }
                .map(e);
                missing.push(format!("{b}: {e}"));
            }
        }
        let uploads = match (uploads, missing.is_empty()) {
            (Ok(u), true) => {
                checks.push(Check::pass(
                    "buckets",
                    format!(
                        "uploads bucket {} and processed bucket {} exist",
                        c.uploads_bucket, c.processed_bucket
                    ),
                ));
                Some(u)
            }
            (u, _) => {
                if let Err(e) = &u {
                    missing.push(e.to_string());
                }
                checks.push(Check::fail(
                    "buckets",
                    missing.join("; "),
                    format!("create the buckets and check the credentials: {SETUP_HINT}"),
                ));
                // The processed bucket alone missing still lets the
                // uploads bucket's checks run.
                u.ok().filter(|_| {
                    !missing
                        .iter()
                        .any(|m| m.starts_with(&format!("{}:", c.uploads_bucket)))
                })
            }
        };

        // Queue.
        let queue = match self.resolve_queue().await {
            Ok((q, arn)) => {
                checks.push(Check::pass("queue", format!("{} ({arn})", q.url())));
                Some((q, arn))
            }
            Err(e) => {
                checks.push(Check::fail(
                    "queue",
                    format!("queue {}: {e}", c.queue),
                    format!("create the queue and its dead-letter queue: {SETUP_HINT}"),
                ));
                None
            }
        };

        let no_bucket = "the uploads bucket is not reachable (see `buckets`)";
        let no_queue = "the queue is not reachable (see `queue`)";

        // Uploads bucket configuration.
        match &uploads {
            Some(u) => {
                checks.push(if c.app_origins.is_empty() {
                    Check::skipped("cors", "no app origin given")
                } else {
                    match u.cors_rules().await {
                        Ok(rules) => cors_check(&rules, &c.app_origins),
                        Err(e) => error_check("cors", &e),
                    }
                });
                checks.push(match u.lifecycle_rules().await {
                    Ok(rules) => lifecycle_check(&rules, &c.prefix),
                    Err(e) => error_check("lifecycle", &e),
                });
                checks.push(match u.versioning_status().await {
                    Ok(s) => versioning_check(&c.uploads_bucket, s.as_deref()),
                    Err(e) => error_check("versioning", &e),
                });
                checks.push(match u.bucket_policy().await {
                    Ok(p) => deny_unscanned_check(p.as_deref(), &c.uploads_bucket, &c.prefix),
                    Err(e) => error_check("deny-unscanned-reads", &e),
                });
            }
            None => {
                for n in ["cors", "lifecycle", "versioning", "deny-unscanned-reads"] {
                    checks.push(Check::skipped(n, no_bucket));
                }
            }
        }

        // Queue configuration.
        match &queue {
            Some((q, arn)) => {
                checks.push(self.redrive_check(q).await);
                checks.push(match q.attribute(QueueAttributeName::Policy).await {
                    Ok(p) => queue_policy_check(p.as_deref(), arn, &c.uploads_bucket),
                    Err(e) => error_check("queue-policy", &e),
                });
            }
            None => {
                checks.push(Check::skipped("queue-redrive", no_queue));
                checks.push(Check::skipped("queue-policy", no_queue));
            }
        }

        // Notifications.
        let notifications = match (&uploads, &queue) {
            (Some(u), Some((_, arn))) => match notification_configuration(u).await {
                Ok(cfg) => {
                    let queues = cfg
                        .as_ref()
                        .map(|c| c.queue_configurations().to_vec())
                        .unwrap_or_default();
                    notification_check(&queues, arn, &c.prefix)
                }
                Err(e) => error_check("bucket-notifications", &e),
            },
            (None, _) => Check::skipped("bucket-notifications", no_bucket),
            (_, None) => Check::skipped("bucket-notifications", no_queue),
        };
        let notifications_ok = notifications.status != CheckStatus::Fail
            && notifications.status != CheckStatus::Skipped;
        checks.push(notifications);
        checks.push(match (&uploads, &queue) {
            _ if !c.round_trip => Check::skipped("notification-round-trip", "turned off"),
            (Some(u), Some((q, _))) if notifications_ok => self.round_trip(u, q).await,
            _ => Check::skipped(
                "notification-round-trip",
                "the bucket does not notify the queue (see `bucket-notifications`)",
            ),
        });

        // clamd.
        checks.push(match &c.clamd {
            None => Check::skipped("clamd", "no clamd address given"),
            Some(addr) => clamd_check(addr, c.clamd_max_database_age).await,
        });
        Report { checks }
    }

    /// The [`IamScope`] of this deployment for [`super::iam`]: its
    /// buckets and prefix, and the event queue's ARN read from SQS
    /// (quarantine defaults to the uploads bucket under `quarantine/`).
    ///
    /// # Errors
    /// [`crate::Error::Sqs`] or [`crate::Error::QueueUnavailable`] when
    /// the queue cannot be resolved.
    pub async fn iam_scope(&self) -> crate::Result<IamScope> {
        let c = &self.config;
        let (_, arn) = self.resolve_queue().await?;
        Ok(IamScope::new(
            &c.uploads_bucket,
            &c.prefix,
            &c.processed_bucket,
            arn,
        ))
    }

    async fn resolve_queue(&self) -> crate::Result<(SqsQueue, String)> {
        let url = queue_url(&self.sqs, &self.config.queue).await?;
        let q = SqsQueue::new(self.sqs.clone(), url);
        let arn = q.arn().await?;
        Ok((q, arn))
    }

    async fn redrive_check(&self, q: &SqsQueue) -> Check {
        const NAME: &str = "queue-redrive";
        let attr = match q.attribute(QueueAttributeName::RedrivePolicy).await {
            Ok(a) => a,
            Err(e) => return error_check(NAME, &e),
        };
        let fix = "give the queue a dead-letter queue and a redrive policy (maxReceiveCount 5): \
                   upload-setup creates NAME-dlq, or aws sqs set-queue-attributes --attributes \
                   RedrivePolicy='{\"deadLetterTargetArn\":\"DLQ_ARN\",\"maxReceiveCount\":\"5\"}'";
        let (dlq_arn, count) = match parse_redrive(attr.as_deref()) {
            Ok(r) => r,
            Err(detail) => return Check::fail(NAME, detail, fix),
        };
        // arn:aws:sqs:REGION:ACCOUNT:NAME
        let parts: Vec<&str> = dlq_arn.split(':').collect();
        let (Some(account), Some(name)) = (parts.get(4), parts.get(5)) else {
            return Check::fail(
                NAME,
                format!("the redrive policy names {dlq_arn:?}, not a queue ARN"),
                fix,
            );
        };
        match self
            .sqs
            .get_queue_url()
            .queue_name(*name)
            .queue_owner_aws_account_id(*account)
            .send()
            .await
        {
            Ok(_) => Check::pass(
                NAME,
                format!("messages go to the dead-letter queue {name} after {count} receives"),
            ),
            Err(e) => Check::fail(
                NAME,
                format!(
                    "the dead-letter queue {dlq_arn} of the redrive policy is not reachable: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                ),
                fix,
            ),
        }
    }

    async fn round_trip(&self, uploads: &S3Storage, queue: &SqsQueue) -> Check {
        const NAME: &str = "notification-round-trip";
        let id = uuid::Uuid::new_v4().simple().to_string();
        let key = match ObjectKey::new(probe_key(&self.config.prefix, &id)) {
            Ok(k) => k,
            Err(e) => return error_check(NAME, &e),
        };
        let put = uploads
            .put(
                &key,
                bytes::Bytes::from_static(b"upload-doctor probe: safe to delete\n"),
                PutOptions::default()
                    .with_content_type("text/plain")
                    .with_create_only(true),
            )
            .await;
        let meta = match put {
            Ok(m) => m,
            Err(e) => {
                return Check::fail(
                    NAME,
                    format!("could not write the probe {key}: {e}"),
                    "let the doctor's credentials s3:PutObject under the prefix",
                );
            }
        };
        let started = tokio::time::Instant::now();
        let outcome = self.wait_for_probe(uploads, queue, &key).await;
        let waited = started.elapsed();
        if let Err(e) = uploads
            .delete_version(&key, meta.version_id.as_deref())
            .await
        {
            tracing::warn!(%key, error = %e, "could not delete the doctor's probe");
        }
        match outcome {
            Ok(Some(by)) => Check::pass(
                NAME,
                format!(
                    "the probe's ObjectCreated event reached the queue in {:.1} s ({by})",
                    waited.as_secs_f64()
                ),
            ),
            Ok(None) => Check::fail(
                NAME,
                format!(
                    "no event for the probe {key} within {} s",
                    self.config.probe_timeout.as_secs()
                ),
                "check the bucket notification (filter, events, queue ARN) and that the queue \
                 policy lets s3.amazonaws.com send from this bucket; SSE-KMS queues also need the \
                 key policy to allow S3",
            ),
            Err(e) => error_check(NAME, &e),
        }
    }

    /// `Some(who)` once the probe's event was seen, by the doctor or a
    /// worker; `None` after the timeout.
    async fn wait_for_probe(
        &self,
        uploads: &S3Storage,
        queue: &SqsQueue,
        key: &ObjectKey,
    ) -> crate::Result<Option<&'static str>> {
        let deadline = tokio::time::Instant::now() + self.config.probe_timeout;
        // A real message received meanwhile is held (invisible) until the
        // round trip ends, then released at once: it is received by the
        // doctor at most once, one receive toward its redrive limit. (Made
        // visible again at once, it would come back at every poll and
        // could be dead-lettered before any worker saw it.)
        let opts = ReceiveOptions::default()
            .with_max_messages(10)
            .with_wait(Duration::from_secs(1))
            .with_visibility_timeout(self.config.probe_timeout + Duration::from_secs(30));
        let mut held: Vec<(String, String)> = Vec::new();
        let outcome = async {
            loop {
                if let Ok(tags) = uploads.get_tags(key).await
                    && tags.get(PROBE_ACK_TAG) == Some(PROBE_ACK_VALUE)
                {
                    return Ok(Some("acknowledged by a worker"));
                }
                let mut found = false;
                for m in queue.receive(&opts).await? {
                    if is_probe_event(&m.body, uploads.bucket(), key.as_str()) {
                        queue.delete(&m.receipt_handle).await?;
                        found = true;
                    } else {
                        held.push((m.message_id, m.receipt_handle));
                    }
                }
                if found {
                    return Ok(Some("received by the doctor"));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Ok(None);
                }
            }
        }
        .await;
        for (id, handle) in &held {
            if let Err(e) = queue.change_visibility(handle, Duration::ZERO).await {
                tracing::warn!(message_id = %id, error = %e, "could not release a message; visible again after the doctor's visibility timeout");
            }
        }
        outcome
    }
}

/// The `clamd` check of clamd at `address`: it must answer `VERSION`
/// (5 s to connect and to answer); its database may be at most `max_age`
/// old ([`clamd_version_check`]).
pub async fn clamd_check(address: &ClamdAddress, max_age: Duration) -> Check {
    let scanner = ClamdScanner::new(
        ClamdConfig::new(address.clone())
            .with_connect_timeout(Duration::from_secs(5))
            .with_io_timeout(Duration::from_secs(5)),
    );
    match scanner.version().await {
        Ok(v) => clamd_version_check(&v, OffsetDateTime::now_utc(), max_age),
        Err(e) => Check::fail(
            "clamd",
            format!("clamd at {address} does not answer: {e}"),
            "start clamd (clamav-daemon) and check the address and any firewall between the \
             worker and it",
        ),
    }
}

/// Whether `body` is an S3 event message with a record of `key` in
/// `bucket`.
fn is_probe_event(body: &str, bucket: &str, key: &str) -> bool {
    match parse_event_message(body) {
        Ok(EventMessage::Records(records)) => records
            .iter()
            .any(|r| r.s3.bucket.name == bucket && r.key().is_ok_and(|k| k.as_str() == key)),
        _ => false,
    }
}

fn error_check(name: &'static str, e: &dyn std::fmt::Display) -> Check {
    Check::fail(
        name,
        format!("could not read the configuration: {e}"),
        "check the doctor's credentials (read access to the bucket and queue configuration) \
         and the endpoint",
    )
}

/// Whether CORS origin `pattern` (`*`, an exact origin, or one `*`
/// wildcard) allows `origin`.
fn origin_matches(pattern: &str, origin: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(origin),
        Some((pre, post)) => {
            origin.len() >= pre.len() + post.len()
                && origin.starts_with(pre)
                && origin.ends_with(post)
        }
    }
}

/// Request headers a browser sends with a presigned PUT of the upload API
/// (its preflight names them): the signed `Content-Type`, the create-only
/// `If-None-Match` and the signed metadata (route, owner, trace context;
/// an app's hook adds its own `x-amz-meta-*`).
pub const BROWSER_PUT_HEADERS: &[&str] = &[
    "content-type",
    "if-none-match",
    "x-amz-meta-upload-route",
    "x-amz-meta-upload-owner",
    "x-amz-meta-upload-traceparent",
];

/// Whether a CORS `AllowedHeaders` entry (`*` at most once, as S3 allows)
/// covers `header`, case-insensitively.
fn header_pattern_matches(pattern: &str, header: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), header.to_ascii_lowercase());
    match p.split_once('*') {
        Some((pre, post)) => {
            h.len() >= pre.len() + post.len() && h.starts_with(pre) && h.ends_with(post)
        }
        None => p == h,
    }
}

/// Whether `allowed` (a rule's `AllowedHeaders`) covers every header of
/// [`BROWSER_PUT_HEADERS`].
fn allows_put_headers(allowed: &[String]) -> bool {
    BROWSER_PUT_HEADERS
        .iter()
        .all(|h| allowed.iter().any(|p| header_pattern_matches(p, h)))
}

/// The `cors` check on `rules` (GetBucketCors) for `origins`: each origin
/// needs one rule that allows it to `PUT` with the headers of a presigned
/// upload ([`BROWSER_PUT_HEADERS`]; `*` covers them) and exposes `ETag`.
pub fn cors_check(rules: &[CorsRule], origins: &[String]) -> Check {
    const NAME: &str = "cors";
    let mut problems = Vec::new();
    for origin in origins {
        let candidates: Vec<&CorsRule> = rules
            .iter()
            .filter(|r| {
                r.allowed_origins()
                    .iter()
                    .any(|p| origin_matches(p, origin))
            })
            .collect();
        if candidates.is_empty() {
            problems.push(format!("no CORS rule allows the origin {origin}"));
            continue;
        }
        let ok = |r: &&CorsRule| {
            r.allowed_methods()
                .iter()
                .any(|m| m.eq_ignore_ascii_case("PUT"))
                && allows_put_headers(r.allowed_headers())
                && r.expose_headers()
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case("etag"))
        };
        if candidates.iter().any(ok) {
            continue;
        }
        let r = candidates[0];
        let mut missing = Vec::new();
        if !r
            .allowed_methods()
            .iter()
            .any(|m| m.eq_ignore_ascii_case("PUT"))
        {
            missing.push("AllowedMethods PUT");
        }
        if !allows_put_headers(r.allowed_headers()) {
            missing.push(
                "AllowedHeaders * (or Content-Type, If-None-Match and x-amz-meta-*: the headers of a presigned PUT)",
            );
        }
        if !r
            .expose_headers()
            .iter()
            .any(|h| h.eq_ignore_ascii_case("etag"))
        {
            missing
                .push("ExposeHeaders ETag (browsers cannot complete multipart uploads without it)");
        }
        problems.push(format!(
            "the CORS rule for {origin} lacks {}",
            missing.join(", ")
        ));
    }
    if problems.is_empty() {
        Check::pass(
            NAME,
            format!(
                "{} may PUT with the headers of a presigned upload and read ETag",
                origins.join(", ")
            ),
        )
    } else {
        Check::fail(
            NAME,
            problems.join("; "),
            format!(
                "apply the SDK's CORS rule (AllowedMethods PUT POST GET HEAD, AllowedHeaders *, \
                 ExposeHeaders ETag Location x-amz-version-id): upload-setup --cors-origin {}",
                origins.join(" --cors-origin ")
            ),
        )
    }
}

/// The `lifecycle` check on `rules` (GetBucketLifecycleConfiguration): an
/// enabled rule whose prefix filter covers `prefix` (or the whole bucket)
/// and that has `AbortIncompleteMultipartUpload`.
pub fn lifecycle_check(rules: &[LifecycleRule], prefix: &str) -> Check {
    const NAME: &str = "lifecycle";
    let covering = rules.iter().find_map(|r| {
        if r.status().as_str() != "Enabled" {
            return None;
        }
        let days = r
            .abort_incomplete_multipart_upload()?
            .days_after_initiation()?;
        let rule_prefix = match r.filter() {
            Some(f) => {
                if f.tag().is_some() || f.and().is_some_and(|a| !a.tags().is_empty()) {
                    return None;
                }
                f.prefix()
                    .or_else(|| f.and().and_then(|a| a.prefix()))
                    .unwrap_or("")
            }
            // Rules written before `Filter` existed carry a top-level
            // prefix (deprecated in the SDK, still returned by S3).
            #[allow(deprecated)]
            None => r.prefix().unwrap_or(""),
        };
        prefix
            .starts_with(rule_prefix)
            .then(|| (r.id().unwrap_or("(no ID)").to_owned(), days))
    });
    match covering {
        Some((id, days)) => Check::pass(
            NAME,
            format!("incomplete multipart uploads are aborted after {days} days (rule {id})"),
        ),
        None => Check::fail(
            NAME,
            format!(
                "no enabled lifecycle rule aborts incomplete multipart uploads under {prefix:?}: \
                 abandoned parts are stored, and billed, forever"
            ),
            "add an AbortIncompleteMultipartUpload rule (7 days): upload-setup \
             --abort-incomplete-days 7, or add upload_core::s3::abort_incomplete_rule to the \
             bucket's own lifecycle configuration",
        ),
    }
}

/// The `versioning` check on the bucket's versioning status
/// (GetBucketVersioning: `Enabled`, `Suspended` or none).
pub fn versioning_check(bucket: &str, status: Option<&str>) -> Check {
    const NAME: &str = "versioning";
    let fix = format!(
        "turn versioning on (upload-setup --versioning, or aws s3api put-bucket-versioning \
         --bucket {bucket} --versioning-configuration Status=Enabled) so that events name the \
         exact version the worker scans"
    );
    match status {
        Some("Enabled") => Check::pass(NAME, "versioning is enabled"),
        Some(s) => Check::warn(NAME, format!("versioning is {s}"), fix),
        None => Check::warn(NAME, "versioning was never enabled", fix),
    }
}

fn as_strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => Vec::new(),
    }
}

/// Whether an IAM action pattern (`s3:GetObject`, `s3:Get*`, `*`) covers
/// `action` (case-insensitive, as IAM compares actions).
fn action_covers(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match p.split_once('*') {
        None => p == a,
        Some((pre, post)) => {
            a.len() >= pre.len() + post.len() && a.starts_with(pre) && a.ends_with(post)
        }
    }
}

fn principal_is_everyone(st: &Value) -> bool {
    match st.get("Principal") {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(o)) => o
            .get("AWS")
            .is_some_and(|v| as_strings(Some(v)).contains(&"*")),
        _ => false,
    }
}

/// Whether the Condition block of `st` holds anything but the tag test
/// (`StringNotEquals` on `s3:ExistingObjectTag/scan-status`) and the
/// principal exemption (`ArnNotEquals`/`ArnNotLike` on `aws:PrincipalArn`).
fn condition_narrows(st: &Value) -> bool {
    let Some(c) = st.get("Condition").and_then(Value::as_object) else {
        return false;
    };
    c.iter().any(|(op, keys)| {
        let allowed = match op.as_str() {
            "StringNotEquals" | "StringNotEqualsIgnoreCase" => "s3:ExistingObjectTag/scan-status",
            "ArnNotEquals" | "ArnNotLike" => "aws:PrincipalArn",
            _ => return true,
        };
        keys.as_object()
            .is_none_or(|k| k.keys().any(|k| !k.eq_ignore_ascii_case(allowed)))
    })
}

/// The `deny-unscanned-reads` check on the bucket policy document `policy`
/// (GetBucketPolicy; `None` when the bucket has none): a `Deny` to every
/// principal of `s3:GetObject` on all of `prefix` in `bucket` unless the
/// `scan-status` tag is `CLEAN` (`upload_scan::deny_unscanned_reads_statement`
/// or an equivalent). Without `s3:GetObjectVersion` denied too, it warns; a
/// statement narrowed by other conditions, or exempting every principal,
/// fails.
pub fn deny_unscanned_check(policy: Option<&str>, bucket: &str, prefix: &str) -> Check {
    const NAME: &str = "deny-unscanned-reads";
    let fix = format!(
        "apply the bucket policy upload_scan::deny_unscanned_reads_policy({bucket:?}, \
         [worker role ARN]): upload-setup --worker-principal-arn ARN"
    );
    let Some(policy) = policy else {
        return Check::fail(
            NAME,
            "the uploads bucket has no policy: objects are readable before they are scanned",
            fix,
        );
    };
    let doc: Value = match serde_json::from_str(policy) {
        Ok(v) => v,
        Err(e) => return Check::fail(NAME, format!("the bucket policy is not JSON: {e}"), fix),
    };
    let object_arns = [
        format!("arn:aws:s3:::{bucket}/*"),
        format!("arn:aws:s3:::{bucket}/{prefix}*"),
    ];
    let mut narrowed = false;
    let found = statements(&doc).into_iter().find_map(|st| {
        let deny = st.get("Effect").and_then(Value::as_str) == Some("Deny");
        let resources = as_strings(st.get("Resource"));
        let covers_prefix = resources.iter().any(|r| {
            object_arns.iter().any(|a| a == r)
                || r.strip_prefix(&format!("arn:aws:s3:::{bucket}/"))
                    .and_then(|p| p.strip_suffix('*'))
                    .is_some_and(|p| !p.contains('*') && prefix.starts_with(p))
        });
        let cond = st
            .get("Condition")
            .and_then(|c| {
                c.get("StringNotEquals")
                    .or_else(|| c.get("StringNotEqualsIgnoreCase"))
            })
            .and_then(|c| c.get("s3:ExistingObjectTag/scan-status"));
        let unless_clean = as_strings(cond) == ["CLEAN"];
        if !(deny && principal_is_everyone(st) && covers_prefix && unless_clean) {
            return None;
        }
        // Any other condition narrows the Deny (e.g. aws:SecureTransport
        // false: plain-HTTP reads only): it no longer protects every read.
        if condition_narrows(st) {
            narrowed = true;
            return None;
        }
        let actions = as_strings(st.get("Action"));
        let covers = |a: &str| actions.iter().any(|p| action_covers(p, a));
        covers("s3:GetObject").then(|| {
            let exempt = ["ArnNotEquals", "ArnNotLike"]
                .iter()
                .flat_map(|op| {
                    as_strings(
                        st.get("Condition")
                            .and_then(|c| c.get(*op))
                            .and_then(|c| c.get("aws:PrincipalArn")),
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            (covers("s3:GetObjectVersion"), exempt)
        })
    });
    match found {
        Some((_, exempt))
            if exempt
                .split(", ")
                .any(|a| a == "*" || a.ends_with(":*") || a == "arn:aws:iam::*") =>
        {
            Check::fail(
                NAME,
                format!("the Deny of unscanned reads exempts every principal ({exempt})"),
                fix,
            )
        }
        None if narrowed => Check::fail(
            NAME,
            "the Deny of unscanned reads has further conditions that narrow it (only the scan-status tag and the worker's aws:PrincipalArn belong there): some reads of unscanned objects get through",
            fix,
        ),
        Some((true, exempt)) => Check::pass(
            NAME,
            if exempt.is_empty() {
                "reads of objects not tagged scan-status=CLEAN are denied to everyone (the worker too: it cannot read what it must scan)".to_owned()
            } else {
                format!(
                    "reads of objects not tagged scan-status=CLEAN are denied to all but {exempt}"
                )
            },
        ),
        Some((false, _)) => Check::warn(
            NAME,
            "s3:GetObject of unscanned objects is denied, but s3:GetObjectVersion is not: reads by version ID get through",
            fix,
        ),
        None => Check::fail(
            NAME,
            "no statement of the bucket policy denies reads of objects not tagged scan-status=CLEAN",
            fix,
        ),
    }
}

/// Parses a queue's `RedrivePolicy` attribute into
/// `(deadLetterTargetArn, maxReceiveCount)`; the error is the check's
/// detail (absent, not JSON, fields missing).
pub fn parse_redrive(attr: Option<&str>) -> std::result::Result<(String, u32), String> {
    let Some(attr) = attr.filter(|a| !a.is_empty()) else {
        return Err("the queue has no redrive policy: a message that always fails is retried until it expires, and is then lost".into());
    };
    let v: Value = serde_json::from_str(attr)
        .map_err(|e| format!("the redrive policy is not JSON ({e}): {attr}"))?;
    let arn = v
        .get("deadLetterTargetArn")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the redrive policy has no deadLetterTargetArn: {attr}"))?;
    let count = match v.get("maxReceiveCount") {
        Some(Value::String(s)) => s.parse().ok(),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    }
    .ok_or_else(|| format!("the redrive policy has no valid maxReceiveCount: {attr}"))?;
    Ok((arn.to_owned(), count))
}

/// The `queue-policy` check on the queue's access policy `policy`
/// (`Policy` attribute; `None` when it has none): an `Allow` of
/// `sqs:SendMessage` on `queue_arn` to the S3 service principal (or
/// everyone) whose `aws:SourceArn` condition, if any, matches the bucket.
pub fn queue_policy_check(policy: Option<&str>, queue_arn: &str, bucket: &str) -> Check {
    const NAME: &str = "queue-policy";
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let fix = "add the statement upload_pipeline::sqs::connect_bucket_to_queue writes (Allow \
               s3.amazonaws.com sqs:SendMessage on the queue if aws:SourceArn is the bucket): \
               run upload-setup";
    let doc: Option<Value> = policy.and_then(|p| serde_json::from_str(p).ok());
    let allowed = doc.as_ref().is_some_and(|doc| {
        statements(doc).into_iter().any(|st| {
            let allow = st.get("Effect").and_then(Value::as_str) == Some("Allow");
            let principal = match st.get("Principal") {
                Some(Value::String(s)) => s == "*",
                Some(Value::Object(o)) => {
                    as_strings(o.get("Service")).contains(&"s3.amazonaws.com")
                        || as_strings(o.get("AWS")).contains(&"*")
                }
                _ => false,
            };
            let action = as_strings(st.get("Action"))
                .iter()
                .any(|a| action_covers(a, "sqs:SendMessage"));
            let resources = as_strings(st.get("Resource"));
            let resource =
                resources.is_empty() || resources.iter().any(|r| *r == queue_arn || *r == "*");
            let source = st
                .get("Condition")
                .and_then(|c| c.get("ArnLike").or_else(|| c.get("ArnEquals")))
                .and_then(|c| c.get("aws:SourceArn"));
            let source_ok = source.is_none()
                || as_strings(source)
                    .iter()
                    .any(|p| origin_matches(p, &bucket_arn));
            allow && principal && action && resource && source_ok
        })
    });
    if allowed {
        Check::pass(
            NAME,
            format!("S3 may send events from {bucket_arn} to the queue"),
        )
    } else if policy.is_none() {
        Check::fail(
            NAME,
            "the queue has no access policy: S3 cannot send events to it",
            fix,
        )
    } else {
        Check::fail(
            NAME,
            format!("no statement of the queue policy lets S3 send events from {bucket_arn}"),
            fix,
        )
    }
}

/// The `bucket-notifications` check on the bucket's queue configurations:
/// one for `queue_arn` with `s3:ObjectCreated:*` (or Put, Post and
/// CompleteMultipartUpload) whose prefix filter covers `prefix`; it warns
/// without `s3:ObjectRemoved:*` (variants of deleted originals stay) or
/// with a suffix filter.
pub fn notification_check(queues: &[QueueConfiguration], queue_arn: &str, prefix: &str) -> Check {
    const NAME: &str = "bucket-notifications";
    let fix = "connect the bucket to the queue (upload_pipeline::sqs::connect_bucket_to_queue): \
               run upload-setup with the same --prefix";
    let ours: Vec<&QueueConfiguration> = queues
        .iter()
        .filter(|q| q.queue_arn() == queue_arn)
        .collect();
    if ours.is_empty() {
        return Check::fail(
            NAME,
            format!("the uploads bucket sends no events to {queue_arn}"),
            fix,
        );
    }
    let mut notes = Vec::new();
    for q in &ours {
        let events: Vec<&str> = q.events().iter().map(|e| e.as_str()).collect();
        let created = events.contains(&"s3:ObjectCreated:*")
            || [
                "s3:ObjectCreated:Put",
                "s3:ObjectCreated:Post",
                "s3:ObjectCreated:CompleteMultipartUpload",
            ]
            .iter()
            .all(|e| events.contains(e));
        let rules = q
            .filter()
            .and_then(|f| f.key())
            .map(|k| k.filter_rules().to_vec())
            .unwrap_or_default();
        let rule = |name: &str| {
            rules
                .iter()
                .find(|r| {
                    r.name()
                        .is_some_and(|n| n.as_str().eq_ignore_ascii_case(name))
                })
                .and_then(|r| r.value())
                .unwrap_or("")
                .to_owned()
        };
        let (p, suffix) = (rule("prefix"), rule("suffix"));
        if !created {
            notes.push(format!(
                "configuration {:?} lacks s3:ObjectCreated:*",
                q.id().unwrap_or("")
            ));
            continue;
        }
        if !prefix.starts_with(&p) {
            notes.push(format!("its prefix filter {p:?} does not cover {prefix:?}"));
            continue;
        }
        let removed = events.contains(&"s3:ObjectRemoved:*");
        let detail = format!(
            "ObjectCreated{} events under {:?} go to the queue",
            if removed { " and ObjectRemoved" } else { "" },
            p
        );
        return if !suffix.is_empty() {
            Check::warn(
                NAME,
                format!("{detail}, only for keys ending in {suffix:?}"),
                fix,
            )
        } else if !removed {
            Check::warn(
                NAME,
                format!(
                    "{detail}; without s3:ObjectRemoved:* the variants of deleted originals stay"
                ),
                fix,
            )
        } else {
            Check::pass(NAME, detail)
        };
    }
    Check::fail(NAME, notes.join("; "), fix)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The database date of a clamd `VERSION` line such as
/// `ClamAV 1.4.3/27480/Wed Dec  3 09:33:02 2025` (taken as UTC: clamd
/// prints the signature build time without a zone), or `None` when the
/// line has no database part (only local databases loaded) or an
/// unexpected shape.
pub fn clamd_database_date(version: &str) -> Option<OffsetDateTime> {
    let date = version.splitn(3, '/').nth(2)?;
    let t: Vec<&str> = date.split_whitespace().collect();
    let [_, month, day, hms, year] = t.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m == month)? as u8 + 1;
    let month = time::Month::try_from(month).ok()?;
    let mut hms = hms.split(':').map(|n| n.parse::<u8>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    let date = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    let time = time::Time::from_hms(h, m, s).ok()?;
    Some(time::PrimitiveDateTime::new(date, time).assume_utc())
}

/// The `clamd` check on the `VERSION` line clamd answered, at `now`: a
/// warning when the database is older than `max_age` or its date unknown.
pub fn clamd_version_check(version: &str, now: OffsetDateTime, max_age: Duration) -> Check {
    const NAME: &str = "clamd";
    let fix = "update the signatures: run freshclam (or its daemon) beside clamd";
    match clamd_database_date(version) {
        None => Check::warn(
            NAME,
            format!(
                "clamd answers ({version}) but reports no database date: no official database is loaded"
            ),
            fix,
        ),
        Some(date) => {
            let age = now - date;
            let days = age.as_seconds_f64() / 86_400.0;
            if age > max_age {
                Check::warn(
                    NAME,
                    format!("clamd answers ({version}); its database is {days:.1} days old"),
                    fix,
                )
            } else {
                Check::pass(
                    NAME,
                    format!("clamd answers ({version}); its database is {days:.1} days old"),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, Event, ExpirationStatus, FilterRule, FilterRuleName,
        LifecycleRuleFilter, NotificationConfigurationFilter, S3KeyFilter,
    };

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str], expose: &[&str]) -> CorsRule {
        let v = |s: &[&str]| Some(s.iter().map(|x| x.to_string()).collect());
        CorsRule::builder()
            .set_allowed_origins(v(origins))
            .set_allowed_methods(v(methods))
            .set_allowed_headers(v(headers))
            .set_expose_headers(v(expose))
            .build()
            .unwrap()
    }

    #[test]
    fn cors_needs_the_origin_put_and_etag() {
        let origins = vec!["https://app.example.com".to_owned()];
        let good = rule(
            &["https://*.example.com"],
            &["PUT", "POST"],
            &["*"],
            &["ETag"],
        );
        assert_eq!(cors_check(&[good], &origins).status, CheckStatus::Pass);
        let no_etag = rule(
            &["https://app.example.com"],
            &["PUT"],
            &["*"],
            &["Location"],
        );
        let c = cors_check(&[no_etag], &origins);
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.detail.contains("ExposeHeaders ETag"), "{}", c.detail);
        assert!(
            c.fix
                .unwrap()
                .contains("--cors-origin https://app.example.com")
        );
        let other = rule(&["https://evil.test"], &["PUT"], &["*"], &["ETag"]);
        let c = cors_check(&[other], &origins);
        assert_eq!(
            c.detail,
            "no CORS rule allows the origin https://app.example.com"
        );
        let c = cors_check(&[], &origins);
        assert_eq!(c.status, CheckStatus::Fail);
        // A hand-written header list without If-None-Match or the signed
        // metadata: the browser's preflight of a presigned PUT fails.
        let content_type_only = rule(&["*"], &["PUT"], &["Content-Type"], &["ETag"]);
        let c = cors_check(&[content_type_only], &origins);
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.detail.contains("If-None-Match"), "{}", c.detail);
        let listed = rule(
            &["*"],
            &["PUT"],
            &["content-type", "If-None-Match", "x-amz-meta-*"],
            &["ETag"],
        );
        assert_eq!(cors_check(&[listed], &origins).status, CheckStatus::Pass);
        assert!(header_pattern_matches(
            "x-amz-meta-*",
            "X-Amz-Meta-Upload-Route"
        ));
        assert!(!header_pattern_matches("x-amz-meta-*", "x-amz-met"));
        assert!(header_pattern_matches("*", "if-none-match"));
        let get_only = rule(&["*"], &["GET"], &["authorization"], &["etag"]);
        let c = cors_check(&[get_only], &origins);
        assert!(
            c.detail.contains("AllowedMethods PUT, AllowedHeaders *"),
            "{}",
            c.detail
        );
    }

    fn lifecycle(prefix: &str, days: Option<i32>, enabled: bool) -> LifecycleRule {
        let mut b = LifecycleRule::builder()
            .id("r")
            .status(if enabled {
                ExpirationStatus::Enabled
            } else {
                ExpirationStatus::Disabled
            })
            .filter(LifecycleRuleFilter::builder().prefix(prefix).build());
        if let Some(d) = days {
            b = b.abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(d)
                    .build(),
            );
        }
        b.build().unwrap()
    }

    #[test]
    fn lifecycle_rule_must_be_enabled_cover_the_prefix_and_abort() {
        let c = lifecycle_check(&[lifecycle("", Some(7), true)], "uploads/");
        assert_eq!(c.status, CheckStatus::Pass);
        assert_eq!(
            c.detail,
            "incomplete multipart uploads are aborted after 7 days (rule r)"
        );
        assert_eq!(
            lifecycle_check(&[lifecycle("uploads/", Some(3), true)], "uploads/").status,
            CheckStatus::Pass
        );
        for rules in [
            vec![],
            vec![lifecycle("", Some(7), false)],
            vec![lifecycle("", None, true)],
            vec![lifecycle("other/", Some(7), true)],
        ] {
            assert_eq!(
                lifecycle_check(&rules, "uploads/").status,
                CheckStatus::Fail
            );
        }
    }

    #[test]
    fn versioning_warns_unless_enabled() {
        assert_eq!(
            versioning_check("b", Some("Enabled")).status,
            CheckStatus::Pass
        );
        assert_eq!(
            versioning_check("b", Some("Suspended")).status,
            CheckStatus::Warn
        );
        let c = versioning_check("b", None);
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(c.fix.unwrap().contains("--bucket b"));
    }

    #[test]
    fn deny_policy_from_upload_scan_passes_and_weaker_ones_do_not() {
        let arn = "arn:aws:iam::123456789012:role/worker";
        let p = upload_scan::deny_unscanned_reads_policy("up", &[arn]);
        let c = deny_unscanned_check(Some(&p), "up", "uploads/");
        assert_eq!(c.status, CheckStatus::Pass, "{c:?}");
        assert!(c.detail.ends_with(arn), "{}", c.detail);
        assert_eq!(
            deny_unscanned_check(None, "up", "uploads/").status,
            CheckStatus::Fail
        );
        // Another bucket's resource, an Allow, another tag value.
        for (from, to) in [
            ("arn:aws:s3:::up/*", "arn:aws:s3:::other/*"),
            ("\"Deny\"", "\"Allow\""),
            ("\"CLEAN\"", "\"INFECTED\""),
            (
                "\"Principal\": \"*\"",
                "\"Principal\": {\"AWS\": \"arn:aws:iam::1:root\"}",
            ),
        ] {
            let bad = p.replace(from, to);
            assert_ne!(bad, p, "{from}");
            assert_eq!(
                deny_unscanned_check(Some(&bad), "up", "uploads/").status,
                CheckStatus::Fail,
                "{from} -> {to}"
            );
        }
        // A prefix-scoped statement covering the uploads, with s3:Get*.
        let scoped = p
            .replace("arn:aws:s3:::up/*", "arn:aws:s3:::up/uploads/*")
            .replace("\"s3:GetObjectVersion\"", "\"s3:Get*\"");
        assert_eq!(
            deny_unscanned_check(Some(&scoped), "up", "uploads/").status,
            CheckStatus::Pass
        );
        let no_version = p.replace(",\n        \"s3:GetObjectVersion\"", "");
        assert_ne!(no_version, p);
        assert_eq!(
            deny_unscanned_check(Some(&no_version), "up", "uploads/").status,
            CheckStatus::Warn
        );
        // From the attacker's side: a Deny narrowed to plain-HTTP reads,
        // and one exempting every principal, protect nothing.
        let mut narrowed: Value = serde_json::from_str(&p).unwrap();
        narrowed["Statement"][0]["Condition"]["Bool"] =
            serde_json::json!({"aws:SecureTransport": "false"});
        let c = deny_unscanned_check(Some(&narrowed.to_string()), "up", "uploads/");
        assert_eq!(c.status, CheckStatus::Fail, "{}", c.detail);
        assert!(c.detail.contains("narrow"), "{}", c.detail);
        let mut everyone: Value = serde_json::from_str(&p).unwrap();
        everyone["Statement"][0]["Condition"]["ArnNotLike"] =
            serde_json::json!({"aws:PrincipalArn": "*"});
        let c = deny_unscanned_check(Some(&everyone.to_string()), "up", "uploads/");
        assert_eq!(c.status, CheckStatus::Fail, "{}", c.detail);
        assert!(c.detail.contains("every principal"), "{}", c.detail);
    }

    #[test]
    fn redrive_policies_parse() {
        assert_eq!(
            parse_redrive(Some(
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:q-dlq","maxReceiveCount":"5"}"#
            )),
            Ok(("arn:aws:sqs:us-east-1:1:q-dlq".to_owned(), 5))
        );
        assert_eq!(
            parse_redrive(Some(r#"{"deadLetterTargetArn":"a","maxReceiveCount":3}"#)),
            Ok(("a".to_owned(), 3))
        );
        assert!(
            parse_redrive(None)
                .unwrap_err()
                .contains("no redrive policy")
        );
        assert!(
            parse_redrive(Some("{}"))
                .unwrap_err()
                .contains("deadLetterTargetArn")
        );
        assert!(
            parse_redrive(Some(r#"{"deadLetterTargetArn":"a"}"#))
                .unwrap_err()
                .contains("maxReceiveCount")
        );
    }

    #[test]
    fn queue_policy_must_let_s3_send_from_the_bucket() {
        let q = "arn:aws:sqs:us-east-1:123456789012:events";
        let policy = |source: &str| {
            serde_json::json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage", "Resource": q,
                "Condition": {"ArnLike": {"aws:SourceArn": source}}}]})
            .to_string()
        };
        assert_eq!(
            queue_policy_check(Some(&policy("arn:aws:s3:::up")), q, "up").status,
            CheckStatus::Pass
        );
        assert_eq!(
            queue_policy_check(Some(&policy("arn:aws:s3:::other")), q, "up").status,
            CheckStatus::Fail
        );
        let c = queue_policy_check(None, q, "up");
        assert_eq!(
            c.detail,
            "the queue has no access policy: S3 cannot send events to it"
        );
    }

    fn queue_config(arn: &str, events: &[&str], prefix: Option<&str>) -> QueueConfiguration {
        let mut b = QueueConfiguration::builder()
            .queue_arn(arn)
            .set_events(Some(events.iter().map(|e| Event::from(*e)).collect()));
        if let Some(p) = prefix {
            b = b.filter(
                NotificationConfigurationFilter::builder()
                    .key(
                        S3KeyFilter::builder()
                            .filter_rules(
                                FilterRule::builder()
                                    .name(FilterRuleName::Prefix)
                                    .value(p)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            );
        }
        b.build().unwrap()
    }

    #[test]
    fn notifications_must_send_created_events_of_the_prefix_to_the_queue() {
        let q = "arn:aws:sqs:us-east-1:1:events";
        let all = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"];
        let c = notification_check(&[queue_config(q, &all, Some("uploads/"))], q, "uploads/");
        assert_eq!(c.status, CheckStatus::Pass);
        assert_eq!(
            c.detail,
            "ObjectCreated and ObjectRemoved events under \"uploads/\" go to the queue"
        );
        assert_eq!(
            notification_check(&[queue_config(q, &all, None)], q, "uploads/").status,
            CheckStatus::Pass
        );
        assert_eq!(
            notification_check(
                &[queue_config(q, &["s3:ObjectCreated:*"], None)],
                q,
                "uploads/"
            )
            .status,
            CheckStatus::Warn
        );
        for cfg in [
            queue_config("arn:aws:sqs:us-east-1:1:other", &all, None),
            queue_config(q, &["s3:ObjectRemoved:*"], None),
            queue_config(q, &all, Some("elsewhere/")),
        ] {
            assert_eq!(
                notification_check(&[cfg], q, "uploads/").status,
                CheckStatus::Fail
            );
        }
        assert_eq!(
            notification_check(&[], q, "uploads/").status,
            CheckStatus::Fail
        );
    }

    #[test]
    fn clamd_database_age() {
        let v = "ClamAV 1.4.3/27480/Wed Dec  3 09:33:02 2025";
        let date = clamd_database_date(v).unwrap();
        assert_eq!(date.to_string(), "2025-12-03 9:33:02.0 +00:00:00");
        let two_days = Duration::from_secs(2 * 86_400);
        let c = clamd_version_check(v, date + time::Duration::hours(12), two_days);
        assert_eq!(c.status, CheckStatus::Pass);
        assert_eq!(
            c.detail,
            format!("clamd answers ({v}); its database is 0.5 days old")
        );
        let c = clamd_version_check(v, date + time::Duration::days(3), two_days);
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(c.detail.ends_with("3.0 days old"), "{}", c.detail);
        assert_eq!(clamd_database_date("ClamAV 1.4.6"), None);
        assert_eq!(clamd_database_date("ClamAV 1.4.6/1/garbage"), None);
        assert_eq!(
            clamd_version_check("ClamAV 1.4.6", date, two_days).status,
            CheckStatus::Warn
        );
    }

    #[test]
    fn report_renders_fixes_and_serialises() {
        let r = Report {
            checks: vec![
                Check::pass("buckets", "ok"),
                Check::fail("cors", "no rule", "add one"),
                Check::skipped("clamd", "no clamd address given"),
            ],
        };
        assert!(!r.passed());
        assert_eq!(
            r.render_text(),
            "[PASS] buckets: ok\n[FAIL] cors: no rule\n       fix: add one\n\
             [SKIP] clamd: no clamd address given\n1 passed, 0 warnings, 1 failed, 1 skipped\n"
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["passed"], false);
        assert_eq!(v["checks"][1]["status"], "fail");
        assert_eq!(v["checks"][1]["fix"], "add one");
        assert!(v["checks"][0].get("fix").is_none());
        assert_eq!(v["checks"][2]["status"], "skipped");
    }

    #[test]
    fn probe_events_are_told_from_others() {
        let body = |key: &str| {
            serde_json::json!({"Records": [{
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": "2026-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "up"}, "object": {"key": key, "size": 1}}}]})
            .to_string()
        };
        let key = "uploads/.upload-doctor/probe-1";
        assert!(is_probe_event(&body(key), "up", key));
        assert!(!is_probe_event(&body("uploads/a/b.jpg"), "up", key));
        assert!(!is_probe_event(&body(key), "other", key));
        assert!(!is_probe_event("not json", "up", key));
    }
}
