//! [`SqsQueue`], the [`Queue`] trait on Amazon SQS (`aws-sdk-sqs`, feature
//! `sqs`), and the wiring that makes a bucket notify it.
//!
//! - [`SqsQueue::create`] makes a standard queue, optionally with a
//!   dead-letter queue and its redrive policy (`maxReceiveCount`).
//! - [`connect_bucket_to_queue`] adds the queue policy AWS requires (S3 may
//!   `sqs:SendMessage` for this bucket only) and configures the bucket's
//!   `s3:ObjectCreated:*` and `s3:ObjectRemoved:*` notifications to the
//!   queue, optionally filtered by key prefix. S3 then sends an
//!   `s3:TestEvent` first, which [`upload_core::parse_event_message`]
//!   recognises.
//!
//! SqsQueue passes the same conformance suite as [`crate::MemoryQueue`]
//! (`testkit::queue`), with the same errors.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use upload_core::s3::{AwsSettings, S3Storage, SdkConfig};

use crate::error::{Error, Result};
use crate::queue::{
    MAX_WAIT, Queue, QueueMessage, ReceiveOptions, check_body, check_max_receive_count,
    check_visibility,
};

/// The `aws-sdk-sqs` version this crate is built with.
pub use aws_sdk_sqs;

/// SQS's most entries per `DeleteMessageBatch` request.
pub const MAX_DELETE_BATCH: usize = 10;

/// An SQS client for `sdk` with `settings`' endpoint (a local server such
/// as moto, or `None` for AWS).
pub fn sqs_client(settings: &AwsSettings, sdk: &SdkConfig) -> Client {
    let mut b = aws_sdk_sqs::config::Builder::from(sdk);
    if let Some(e) = &settings.endpoint_url {
        b = b.endpoint_url(e.clone());
    }
    Client::from_conf(b.build())
}

/// The redrive policy of a queue: after `max_receive_count` receives
/// without a delete, SQS moves a message to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    /// ARN of the dead-letter queue, e.g.
    /// `arn:aws:sqs:us-east-1:123456789012:uploads-dlq`.
    pub dead_letter_target_arn: String,
    /// Receives before a message is dead-lettered, 1..=1000 (SQS limits).
    pub max_receive_count: u32,
}

/// Attributes of a queue made by [`SqsQueue::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueSettings {
    /// Default visibility timeout, 0 s..=12 h (SQS limits); default 30 s.
    pub visibility_timeout: Duration,
    /// How long SQS keeps an unreceived message, 60 s..=14 days; default
    /// 4 days (the SQS default).
    pub message_retention: Duration,
    /// The dead-letter queue, if any.
    pub redrive: Option<RedrivePolicy>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            visibility_timeout: crate::queue::DEFAULT_VISIBILITY_TIMEOUT,
            message_retention: Duration::from_secs(4 * 24 * 3600),
            redrive: None,
        }
    }
}

impl QueueSettings {
    /// Sets the default visibility timeout.
    pub fn with_visibility_timeout(mut self, t: Duration) -> Self {
        self.visibility_timeout = t;
        self
    }

    /// Sets the message retention period.
    pub fn with_message_retention(mut self, t: Duration) -> Self {
        self.message_retention = t;
        self
    }

    /// Sets the dead-letter queue and its `maxReceiveCount`.
    pub fn with_redrive(
        mut self,
        dead_letter_target_arn: impl Into<String>,
        max_receive_count: u32,
    ) -> Self {
        self.redrive = Some(RedrivePolicy {
            dead_letter_target_arn: dead_letter_target_arn.into(),
            max_receive_count,
        });
        self
    }

    fn attributes(&self) -> Result<Vec<(QueueAttributeName, String)>> {
        check_visibility(self.visibility_timeout)?;
        let retention = self.message_retention.as_secs();
        if !(60..=14 * 24 * 3600).contains(&retention) {
            return Err(Error::InvalidQueueParameter {
                name: "message_retention",
                reason: format!("{retention} s is outside 60 s..=14 days"),
            });
        }
        let mut attrs = vec![
            (
                QueueAttributeName::VisibilityTimeout,
                ceil_secs(self.visibility_timeout).to_string(),
            ),
            (
                QueueAttributeName::MessageRetentionPeriod,
                retention.to_string(),
            ),
        ];
        if let Some(r) = &self.redrive {
            check_max_receive_count(r.max_receive_count)?;
            let policy = serde_json::json!({
                "deadLetterTargetArn": r.dead_letter_target_arn,
                "maxReceiveCount": r.max_receive_count.to_string(),
            });
            attrs.push((QueueAttributeName::RedrivePolicy, policy.to_string()));
        }
        Ok(attrs)
    }
}

/// A standard SQS queue as a [`Queue`].
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl SqsQueue {
    /// The existing queue at `queue_url` (e.g.
    /// `https://sqs.us-east-1.amazonaws.com/123456789012/uploads`).
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Creates the queue `name` with `settings`, or returns the existing
    /// one when its attributes are the same (CreateQueue is idempotent).
    ///
    /// # Errors
    /// [`Error::InvalidQueueParameter`] for settings outside SQS's limits;
    /// [`Error::Sqs`] with `QueueAlreadyExists` when a queue of that name
    /// has different attributes, or `QueueDeletedRecently`.
    pub async fn create(client: Client, name: &str, settings: &QueueSettings) -> Result<Self> {
        let mut req = client.create_queue().queue_name(name);
        for (k, v) in settings.attributes()? {
            req = req.attributes(k, v);
        }
        let out = req
            .send()
            .await
            .map_err(|e| map_err("CreateQueue", name, e))?;
        let queue_url = out.queue_url().ok_or_else(|| Error::QueueUnavailable {
            reason: format!("CreateQueue {name} returned no queue URL"),
        })?;
        Ok(Self::new(client, queue_url))
    }

    /// The queue URL.
    pub fn url(&self) -> &str {
        &self.queue_url
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The queue's ARN (`QueueArn` attribute), as needed by redrive
    /// policies and bucket notifications.
    pub async fn arn(&self) -> Result<String> {
        self.attribute(QueueAttributeName::QueueArn)
            .await?
            .ok_or_else(|| Error::QueueUnavailable {
                reason: format!("{} has no QueueArn attribute", self.queue_url),
            })
    }

    /// Approximate number of visible messages
    /// (`ApproximateNumberOfMessages`).
    pub async fn approximate_len(&self) -> Result<u64> {
        Ok(self
            .attribute(QueueAttributeName::ApproximateNumberOfMessages)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// One attribute of the queue (GetQueueAttributes), `None` when unset.
    pub async fn attribute(&self, name: QueueAttributeName) -> Result<Option<String>> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(name.clone())
            .send()
            .await
            .map_err(|e| map_err("GetQueueAttributes", &self.queue_url, e))?;
        Ok(out.attributes().and_then(|a| a.get(&name)).cloned())
    }

    /// Deletes every message in the queue (PurgeQueue; SQS allows one purge
    /// per queue every 60 s).
    pub async fn purge(&self) -> Result<()> {
        self.client
            .purge_queue()
            .queue_url(&self.queue_url)
            .send()
            .await
            .map_err(|e| map_err("PurgeQueue", &self.queue_url, e))?;
        Ok(())
    }

    fn handle_error(&self, op: &'static str, handle: &str, e: Error) -> Error {
        match e {
            Error::Sqs { code, .. } if code.contains("ReceiptHandleIsInvalid") => {
                Error::ReceiptHandleIsInvalid {
                    receipt_handle: handle.chars().take(200).collect(),
                }
            }
            Error::Sqs { code, message, .. }
                if code.contains("MessageNotInflight")
                    || (code.contains("InvalidParameterValue")
                        && message.contains("ReceiptHandle")) =>
            {
                Error::MessageNotInflight {
                    receipt_handle: handle.chars().take(200).collect(),
                }
            }
            other => {
                tracing::debug!(operation = op, error = %other, "SQS request failed");
                other
            }
        }
    }
}

/// Maps an SQS SDK error: throttling, 5xx, timeouts and connection failures
/// to [`Error::QueueUnavailable`] (transient), the rest to [`Error::Sqs`]
/// with the code (the callers turn receipt-handle codes into their
/// variants).
fn map_err<E>(operation: &'static str, target: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map_or(0, |r| r.status().as_u16());
    let SdkError::ServiceError(se) = &err else {
        return Error::QueueUnavailable {
            reason: format!("{operation} {target}: {}", DisplayErrorContext(&err)),
        };
    };
    let code = se.err().code().unwrap_or("").to_owned();
    let message = se.err().message().unwrap_or("").to_owned();
    let throttled = [
        "ThrottlingException",
        "RequestThrottled",
        "ServiceUnavailable",
        "InternalFailure",
        "KmsThrottled",
    ]
    .iter()
    .any(|c| code.contains(c));
    if throttled || status >= 500 {
        return Error::QueueUnavailable {
            reason: format!("{operation} {target}: {code} ({status}) {message}"),
        };
    }
    Error::Sqs {
        operation,
        code,
        status,
        message: format!("{target}: {message}"),
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, body: String) -> Result<String> {
        check_body(&body)?;
        let out = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| map_err("SendMessage", &self.queue_url, e))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }

    /// ReceiveMessage with long polling: `wait` and the visibility timeout
    /// are rounded up to whole seconds (SQS's unit); the receive count is
    /// SQS's `ApproximateReceiveCount`.
    async fn receive(&self, opts: &ReceiveOptions) -> Result<Vec<QueueMessage>> {
        opts.validate()?;
        let wait = ceil_secs(opts.wait).min(MAX_WAIT.as_secs());
        let mut req = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(opts.max_messages as i32)
            .wait_time_seconds(wait as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount);
        if let Some(vt) = opts.visibility_timeout {
            req = req.visibility_timeout(ceil_secs(vt) as i32);
        }
        let out = req
            .send()
            .await
            .map_err(|e| map_err("ReceiveMessage", &self.queue_url, e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| QueueMessage {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
            })
            .collect())
    }

    async fn delete(&self, receipt_handle: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| {
                self.handle_error(
                    "DeleteMessage",
                    receipt_handle,
                    map_err("DeleteMessage", &self.queue_url, e),
                )
            })?;
        Ok(())
    }

    /// DeleteMessageBatch, 10 entries per request.
    async fn delete_batch(&self, receipt_handles: &[String]) -> Vec<Result<()>> {
        let mut results = Vec::with_capacity(receipt_handles.len());
        for chunk in receipt_handles.chunks(MAX_DELETE_BATCH) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(h)
                        .build()
                        .ok()
                })
                .collect();
            let sent = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match sent {
                Ok(out) => {
                    for (i, h) in chunk.iter().enumerate() {
                        let id = i.to_string();
                        let failed = out.failed().iter().find(|f| f.id() == id);
                        results.push(match failed {
                            None => Ok(()),
                            Some(f) => Err(self.handle_error(
                                "DeleteMessageBatch",
                                h,
                                Error::Sqs {
                                    operation: "DeleteMessageBatch",
                                    code: f.code().to_owned(),
                                    status: 400,
                                    message: f.message().unwrap_or_default().to_owned(),
                                },
                            )),
                        });
                    }
                }
                Err(e) => {
                    let reason = map_err("DeleteMessageBatch", &self.queue_url, e).to_string();
                    results.extend(chunk.iter().map(|_| {
                        Err(Error::QueueUnavailable {
                            reason: reason.clone(),
                        })
                    }));
                }
            }
        }
        results
    }

    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<()> {
        check_visibility(timeout)?;
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(ceil_secs(timeout) as i32)
            .send()
            .await
            .map_err(|e| {
                self.handle_error(
                    "ChangeMessageVisibility",
                    receipt_handle,
                    map_err("ChangeMessageVisibility", &self.queue_url, e),
                )
            })?;
        Ok(())
    }
}

/// Which events of a bucket go to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotificationFilter {
    /// Only keys under this prefix (e.g. `uploads/`), so the worker's own
    /// writes elsewhere (quarantine, variants) never trigger it.
    pub prefix: Option<String>,
    /// Also send `s3:ObjectRemoved:*` (the worker deletes variants of a
    /// removed original); default true.
    pub object_removed: bool,
}

impl Default for NotificationFilter {
    fn default() -> Self {
        Self {
            prefix: None,
            object_removed: true,
        }
    }
}

impl NotificationFilter {
    /// Events for keys under `prefix` only; an empty prefix is every key
    /// (no filter rule: S3 refuses a rule with an empty value).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into()).filter(|p| !p.is_empty());
        self
    }

    /// Sends `s3:ObjectRemoved:*` too, or not.
    pub fn with_object_removed(mut self, on: bool) -> Self {
        self.object_removed = on;
        self
    }
}

/// Identifier of the notification configuration and policy statement that
/// [`connect_bucket_to_queue`] writes; running it again replaces them.
pub const NOTIFICATION_ID: &str = "upload-sdk-object-events";

/// Makes `bucket` send its ObjectCreated (and ObjectRemoved) events to
/// `queue`:
///
/// 1. adds to the queue's access policy a statement that lets the S3
///    service principal `sqs:SendMessage` when `aws:SourceArn` is this
///    bucket (AWS "Walkthrough: configuring a bucket for notifications");
///    other statements are kept;
/// 2. writes the bucket notification configuration `upload-sdk-object-events`
///    for `s3:ObjectCreated:*` and `s3:ObjectRemoved:*` with the prefix
///    filter, keeping the bucket's other configurations.
///
/// S3 validates the destination and then sends an `s3:TestEvent`.
///
/// # Errors
/// Storage errors from S3 ([`upload_core::Error::AccessDenied`] without
/// `s3:PutBucketNotification`), [`Error::Sqs`] from SQS.
pub async fn connect_bucket_to_queue(
    bucket: &S3Storage,
    queue: &SqsQueue,
    filter: &NotificationFilter,
) -> Result<()> {
    let queue_arn = queue.arn().await?;
    let name = upload_core::Storage::bucket(bucket).to_owned();
    let bucket_arn = format!("arn:aws:s3:::{name}");
    // 1. The queue policy.
    let existing = queue.attribute(QueueAttributeName::Policy).await?;
    let mut policy: serde_json::Value = existing
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_else(|| serde_json::json!({"Version": "2012-10-17", "Statement": []}));
    let sid = format!("{NOTIFICATION_ID}-{name}");
    let statement = serde_json::json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnLike": {"aws:SourceArn": bucket_arn}},
    });
    let statements = match policy.get_mut("Statement") {
        Some(serde_json::Value::Array(a)) => a,
        _ => {
            policy["Statement"] = serde_json::Value::Array(Vec::new());
            policy["Statement"]
                .as_array_mut()
                .expect("just set to an array")
        }
    };
    statements.retain(|s| s.get("Sid").and_then(|v| v.as_str()) != Some(sid.as_str()));
    statements.push(statement);
    queue
        .client
        .set_queue_attributes()
        .queue_url(&queue.queue_url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .map_err(|e| map_err("SetQueueAttributes", &queue.queue_url, e))?;

    // 2. The bucket notification configuration, merged into the existing one.
    let s3 = bucket.client();
    let current = notification_configuration(bucket).await?;
    let mut events = vec![Event::from("s3:ObjectCreated:*")];
    if filter.object_removed {
        events.push(Event::from("s3:ObjectRemoved:*"));
    }
    let mut ours = QueueConfiguration::builder()
        .id(NOTIFICATION_ID)
        .queue_arn(&queue_arn)
        .set_events(Some(events));
    if let Some(prefix) = &filter.prefix {
        ours = ours.filter(
            NotificationConfigurationFilter::builder()
                .key(
                    S3KeyFilter::builder()
                        .filter_rules(
                            FilterRule::builder()
                                .name(FilterRuleName::Prefix)
                                .value(prefix)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        );
    }
    let ours = ours.build().map_err(|e| Error::InvalidQueueParameter {
        name: "notification",
        reason: e.to_string(),
    })?;
    let mut queues: Vec<QueueConfiguration> = current
        .as_ref()
        .map(|c| c.queue_configurations().to_vec())
        .unwrap_or_default();
    queues.retain(|q| q.id() != Some(NOTIFICATION_ID));
    queues.push(ours);
    let config = NotificationConfiguration::builder()
        .set_queue_configurations(Some(queues))
        .set_topic_configurations(current.as_ref().map(|c| c.topic_configurations().to_vec()))
        .set_lambda_function_configurations(
            current
                .as_ref()
                .map(|c| c.lambda_function_configurations().to_vec()),
        )
        .set_event_bridge_configuration(
            current
                .as_ref()
                .and_then(|c| c.event_bridge_configuration().cloned()),
        )
        .build();
    s3.put_bucket_notification_configuration()
        .bucket(&name)
        .notification_configuration(config)
        .send()
        .await
        .map_err(|e| {
            upload_core::s3::S3ErrorContext {
                operation: "PutBucketNotificationConfiguration",
                bucket: &name,
                key: "",
                upload_id: None,
            }
            .map(e)
        })?;
    Ok(())
}

/// The bucket's notification configuration (GetBucketNotificationConfiguration),
/// or `None` when it has none: some servers (moto) answer an unconfigured
/// bucket with an empty body the SDK cannot parse, which counts as none.
///
/// # Errors
/// Storage errors from S3 ([`upload_core::Error::AccessDenied`] without
/// `s3:GetBucketNotification`, [`upload_core::Error::NoSuchBucket`]).
pub async fn notification_configuration(
    bucket: &S3Storage,
) -> Result<Option<aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput>>
{
    let name = upload_core::Storage::bucket(bucket);
    match bucket
        .client()
        .get_bucket_notification_configuration()
        .bucket(name)
        .send()
        .await
    {
        Ok(out) => Ok(Some(out)),
        Err(SdkError::ResponseError(_)) => Ok(None),
        Err(e) if e.raw_response().is_some_and(|r| r.status().is_success()) => Ok(None),
        Err(e) => Err(upload_core::s3::S3ErrorContext {
            operation: "GetBucketNotificationConfiguration",
            bucket: name,
            key: "",
            upload_id: None,
        }
        .map(e)
        .into()),
    }
}

/// Resolves `queue` to a queue URL: a value starting with `http://` or
/// `https://` is taken as the URL, anything else as a queue name
/// (GetQueueUrl).
///
/// # Errors
/// [`Error::Sqs`] with `AWS.SimpleQueueService.NonExistentQueue` (or
/// `QueueDoesNotExist`) for an unknown name; [`Error::QueueUnavailable`]
/// when SQS cannot be reached.
pub async fn queue_url(client: &Client, queue: &str) -> Result<String> {
    if queue.starts_with("http://") || queue.starts_with("https://") {
        return Ok(queue.to_owned());
    }
    let out = client
        .get_queue_url()
        .queue_name(queue)
        .send()
        .await
        .map_err(|e| map_err("GetQueueUrl", queue, e))?;
    out.queue_url()
        .map(str::to_owned)
        .ok_or_else(|| Error::QueueUnavailable {
            reason: format!("GetQueueUrl {queue} returned no URL"),
        })
}

/// Creates `name` and its dead-letter queue `{name}-dlq` (message
/// retention 14 days, the longest SQS allows, so failures can be
/// inspected), with a redrive after `max_receive_count` receives. Returns
/// `(queue, dead_letter_queue)`.
///
/// # Errors
/// As [`SqsQueue::create`].
pub async fn create_queue_with_dead_letter_queue(
    client: Client,
    name: &str,
    settings: QueueSettings,
    max_receive_count: u32,
) -> Result<(SqsQueue, SqsQueue)> {
    let dlq = SqsQueue::create(
        client.clone(),
        &format!("{name}-dlq"),
        &QueueSettings::default().with_message_retention(Duration::from_secs(14 * 24 * 3600)),
    )
    .await?;
    let arn = dlq.arn().await?;
    let queue =
        SqsQueue::create(client, name, &settings.with_redrive(arn, max_receive_count)).await?;
    Ok((queue, dlq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::MAX_MESSAGE_BYTES;

    #[test]
    fn bodies_sqs_refuses() {
        assert!(check_body("plain {\"json\": true}\n\t\r").is_ok());
        assert!(check_body("unicode ✓ 𝄞").is_ok());
        assert!(matches!(
            check_body("nul \u{0} inside"),
            Err(Error::InvalidQueueParameter { name: "body", .. })
        ));
        assert!(matches!(
            check_body("\u{FFFF}"),
            Err(Error::InvalidQueueParameter { name: "body", .. })
        ));
        assert!(matches!(
            check_body(&"x".repeat(MAX_MESSAGE_BYTES + 1)),
            Err(Error::MessageTooLong { .. })
        ));
    }

    #[test]
    fn settings_become_sqs_attributes() {
        let attrs = QueueSettings::default()
            .with_visibility_timeout(Duration::from_millis(1500))
            .with_redrive("arn:aws:sqs:us-east-1:123456789012:dlq", 3)
            .attributes()
            .unwrap();
        let get =
            |n: QueueAttributeName| attrs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        assert_eq!(
            get(QueueAttributeName::VisibilityTimeout).as_deref(),
            Some("2")
        );
        assert_eq!(
            get(QueueAttributeName::MessageRetentionPeriod).as_deref(),
            Some("345600")
        );
        let redrive: serde_json::Value =
            serde_json::from_str(&get(QueueAttributeName::RedrivePolicy).unwrap()).unwrap();
        assert_eq!(
            redrive["deadLetterTargetArn"],
            "arn:aws:sqs:us-east-1:123456789012:dlq"
        );
        assert_eq!(redrive["maxReceiveCount"], "3");
        let bad = QueueSettings::default().with_redrive("arn", 0).attributes();
        assert!(matches!(
            bad,
            Err(Error::InvalidQueueParameter {
                name: "max_receive_count",
                ..
            })
        ));
        let bad = QueueSettings::default()
            .with_message_retention(Duration::from_secs(59))
            .attributes();
        assert!(matches!(
            bad,
            Err(Error::InvalidQueueParameter {
                name: "message_retention",
                ..
            })
        ));
    }
}
