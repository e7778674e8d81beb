//! Least-privilege IAM policies of the two roles of a deployment: the
//! upload API ([`api_role_policy`], what `upload-server` signs and calls)
//! and the worker ([`worker_role_policy`], what [`crate::Worker`] with an
//! [`UploadProcessor`](crate::UploadProcessor) calls). Both are identity
//! policies (JSON documents, `Version` 2012-10-17) to attach to the role.
//!
//! Not covered: KMS permissions for SSE-KMS buckets or queues
//! (`kms:GenerateDataKey`, `kms:Decrypt` on the key), and the doctor's or
//! `upload-setup`'s own permissions (an operator's).

use serde_json::{Value, json};

/// The resources the policies name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IamScope {
    /// Bucket clients upload into.
    pub uploads_bucket: String,
    /// Key prefix of uploads (e.g. `uploads/`; empty for the whole bucket).
    pub prefix: String,
    /// Bucket of variants and manifests.
    pub processed_bucket: String,
    /// Bucket of quarantined originals (default: the uploads bucket).
    pub quarantine_bucket: String,
    /// Key prefix of quarantined originals (default `quarantine/`).
    pub quarantine_prefix: String,
    /// ARN of the event queue, e.g. `arn:aws:sqs:us-east-1:123456789012:upload-events`.
    pub queue_arn: String,
    /// ARN of the dead-letter queue the worker moves malformed messages
    /// to itself ([`crate::Worker::with_dead_letter_queue`]), if it does;
    /// the redrive policy needs no permission of the worker.
    pub dead_letter_queue_arn: Option<String>,
    /// ARN of a queue the worker sends outcome notifications to
    /// ([`crate::QueueNotifier`] on SQS), if any.
    pub notification_queue_arn: Option<String>,
}

impl IamScope {
    /// The scope of these buckets, prefix and queue; quarantine in the
    /// uploads bucket under `quarantine/`, no dead-letter or notification
    /// queue written by the worker.
    pub fn new(
        uploads_bucket: impl Into<String>,
        prefix: impl Into<String>,
        processed_bucket: impl Into<String>,
        queue_arn: impl Into<String>,
    ) -> Self {
        let uploads_bucket = uploads_bucket.into();
        Self {
            quarantine_bucket: uploads_bucket.clone(),
            uploads_bucket,
            prefix: prefix.into(),
            processed_bucket: processed_bucket.into(),
            quarantine_prefix: "quarantine/".into(),
            queue_arn: queue_arn.into(),
            dead_letter_queue_arn: None,
            notification_queue_arn: None,
        }
    }

    /// Sets where quarantined originals go.
    pub fn with_quarantine(mut self, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        self.quarantine_bucket = bucket.into();
        self.quarantine_prefix = prefix.into();
        self
    }

    /// Sets the dead-letter queue the worker sends malformed messages to.
    pub fn with_dead_letter_queue(mut self, arn: impl Into<String>) -> Self {
        self.dead_letter_queue_arn = Some(arn.into());
        self
    }

    /// Sets the queue the worker sends outcome notifications to.
    pub fn with_notification_queue(mut self, arn: impl Into<String>) -> Self {
        self.notification_queue_arn = Some(arn.into());
        self
    }
}

fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

fn objects_arn(bucket: &str, prefix: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{prefix}*")
}

/// The upload API's policy:
///
/// - `PresignedUploads`: `s3:PutObject` (presigned PUT and POST, and the
///   multipart create, part and complete requests),
///   `s3:AbortMultipartUpload` and `s3:ListMultipartUploadParts` on the
///   uploads under the prefix;
/// - `ReadManifestsAndVariants`: `s3:GetObject` on the processed bucket
///   (the status route reads manifests, and signs GETs of variants);
/// - `MissingManifestIsNotFound`: `s3:ListBucket` on the processed bucket,
///   so a manifest not written yet reads as 404, not 403.
///
/// The API never reads originals nor touches the queue.
pub fn api_role_policy(scope: &IamScope) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PresignedUploads",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                "Resource": objects_arn(&scope.uploads_bucket, &scope.prefix),
            },
            {
                "Sid": "ReadManifestsAndVariants",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": objects_arn(&scope.processed_bucket, ""),
            },
            {
                "Sid": "MissingManifestIsNotFound",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": bucket_arn(&scope.processed_bucket),
            },
        ]
    })
}

/// The worker's policy:
///
/// - `ReadTagAndMoveUploads` on the uploads under the prefix: read the
///   original or the version an event names (`s3:GetObject`,
///   `s3:GetObjectVersion`), read and write its tags (`scan-status`;
///   `s3:GetObjectTagging`, `s3:GetObjectVersionTagging`,
///   `s3:PutObjectTagging`, `s3:PutObjectVersionTagging`), and delete it
///   when it is moved to quarantine (`s3:DeleteObject`,
///   `s3:DeleteObjectVersion`);
/// - `WriteQuarantine` on the quarantine prefix: the tagged copy
///   (`s3:PutObject`, `s3:PutObjectTagging`) and its check
///   (`s3:GetObject`, `s3:GetObjectTagging`);
/// - `WriteVariantsAndManifests` on the processed bucket: `s3:PutObject`,
///   `s3:GetObject` (manifests), `s3:DeleteObject` (variants of replaced
///   or removed originals);
/// - `MissingObjectsAreNotFound`: `s3:ListBucket` on the buckets it reads,
///   so a deleted original or an absent manifest reads as 404, not 403;
/// - `ConsumeEvents` on the event queue: `sqs:ReceiveMessage`,
///   `sqs:DeleteMessage` (batches too), `sqs:ChangeMessageVisibility`
///   (heartbeat, retry backoff);
/// - `SendToQueues` (only with a dead-letter or notification queue in
///   `scope`): `sqs:SendMessage` on those.
///
/// Deny statements in the bucket policy still apply: the worker's role
/// must be exempt from the deny-unscanned-reads statement.
pub fn worker_role_policy(scope: &IamScope) -> Value {
    let mut list_buckets = vec![bucket_arn(&scope.uploads_bucket)];
    for b in [&scope.processed_bucket, &scope.quarantine_bucket] {
        let arn = bucket_arn(b);
        if !list_buckets.contains(&arn) {
            list_buckets.push(arn);
        }
    }
    let mut statements = vec![
        json!({
            "Sid": "ReadTagAndMoveUploads",
            "Effect": "Allow",
            "Action": [
                "s3:GetObject", "s3:GetObjectVersion",
                "s3:GetObjectTagging", "s3:GetObjectVersionTagging",
                "s3:PutObjectTagging", "s3:PutObjectVersionTagging",
                "s3:DeleteObject", "s3:DeleteObjectVersion",
            ],
            "Resource": objects_arn(&scope.uploads_bucket, &scope.prefix),
        }),
        json!({
            "Sid": "WriteQuarantine",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:PutObjectTagging", "s3:GetObject", "s3:GetObjectTagging"],
            "Resource": objects_arn(&scope.quarantine_bucket, &scope.quarantine_prefix),
        }),
        json!({
            "Sid": "WriteVariantsAndManifests",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
            "Resource": objects_arn(&scope.processed_bucket, ""),
        }),
        json!({
            "Sid": "MissingObjectsAreNotFound",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": list_buckets,
        }),
        json!({
            "Sid": "ConsumeEvents",
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"],
            "Resource": scope.queue_arn,
        }),
    ];
    let send: Vec<&String> = [&scope.dead_letter_queue_arn, &scope.notification_queue_arn]
        .into_iter()
        .flatten()
        .collect();
    if !send.is_empty() {
        statements.push(json!({
            "Sid": "SendToQueues",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": send,
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> IamScope {
        IamScope::new(
            "up",
            "uploads/",
            "done",
            "arn:aws:sqs:us-east-1:123456789012:events",
        )
    }

    fn statement<'a>(doc: &'a Value, sid: &str) -> &'a Value {
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid}"))
    }

    #[test]
    fn api_role_can_sign_uploads_and_read_manifests_only() {
        let doc = api_role_policy(&scope());
        assert_eq!(doc["Version"], "2012-10-17");
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 3);
        let up = statement(&doc, "PresignedUploads");
        assert_eq!(
            up["Action"],
            json!([
                "s3:PutObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts"
            ])
        );
        assert_eq!(up["Resource"], "arn:aws:s3:::up/uploads/*");
        let read = statement(&doc, "ReadManifestsAndVariants");
        assert_eq!(read["Action"], json!(["s3:GetObject"]));
        assert_eq!(read["Resource"], "arn:aws:s3:::done/*");
        let list = statement(&doc, "MissingManifestIsNotFound");
        assert_eq!(list["Resource"], "arn:aws:s3:::done");
        let all = doc.to_string();
        assert!(!all.contains("sqs:"), "{all}");
        assert!(!all.contains("arn:aws:s3:::up/*"), "{all}");
        assert!(!all.contains("Delete"), "{all}");
    }

    #[test]
    fn worker_role_reads_tags_quarantines_writes_variants_and_consumes_events() {
        let doc = worker_role_policy(&scope());
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 5);
        let up = statement(&doc, "ReadTagAndMoveUploads");
        assert_eq!(up["Resource"], "arn:aws:s3:::up/uploads/*");
        assert_eq!(
            up["Action"],
            json!([
                "s3:GetObject",
                "s3:GetObjectVersion",
                "s3:GetObjectTagging",
                "s3:GetObjectVersionTagging",
                "s3:PutObjectTagging",
                "s3:PutObjectVersionTagging",
                "s3:DeleteObject",
                "s3:DeleteObjectVersion",
            ])
        );
        let q = statement(&doc, "WriteQuarantine");
        assert_eq!(q["Resource"], "arn:aws:s3:::up/quarantine/*");
        assert_eq!(
            q["Action"],
            json!([
                "s3:PutObject",
                "s3:PutObjectTagging",
                "s3:GetObject",
                "s3:GetObjectTagging"
            ])
        );
        let p = statement(&doc, "WriteVariantsAndManifests");
        assert_eq!(p["Resource"], "arn:aws:s3:::done/*");
        assert_eq!(
            p["Action"],
            json!(["s3:PutObject", "s3:GetObject", "s3:DeleteObject"])
        );
        assert_eq!(
            statement(&doc, "MissingObjectsAreNotFound")["Resource"],
            json!(["arn:aws:s3:::up", "arn:aws:s3:::done"])
        );
        let sqs = statement(&doc, "ConsumeEvents");
        assert_eq!(
            sqs["Action"],
            json!([
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility"
            ])
        );
        assert_eq!(sqs["Resource"], "arn:aws:sqs:us-east-1:123456789012:events");
        assert!(!doc.to_string().contains("sqs:SendMessage"));

        let doc = worker_role_policy(
            &scope()
                .with_quarantine("jail", "q/")
                .with_dead_letter_queue("arn:aws:sqs:us-east-1:123456789012:events-dlq"),
        );
        assert_eq!(
            statement(&doc, "WriteQuarantine")["Resource"],
            "arn:aws:s3:::jail/q/*"
        );
        assert_eq!(
            statement(&doc, "MissingObjectsAreNotFound")["Resource"],
            json!(["arn:aws:s3:::up", "arn:aws:s3:::done", "arn:aws:s3:::jail"])
        );
        let send = statement(&doc, "SendToQueues");
        assert_eq!(send["Action"], json!(["sqs:SendMessage"]));
        assert_eq!(
            send["Resource"],
            json!(["arn:aws:sqs:us-east-1:123456789012:events-dlq"])
        );
    }
}
