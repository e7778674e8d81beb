//! The uploads bucket's policy: reads refused until the `scan-status` tag
//! says `CLEAN`, and (optionally) writes refused unless they are
//! create-only.

use serde_json::{Value, json};

/// The statement of [`deny_unscanned_reads_policy`]: deny `s3:GetObject`
/// and `s3:GetObjectVersion` (a read by version ID, in a versioned bucket)
/// on every object of `bucket` whose `scan-status` tag is not `CLEAN`,
/// except for the principals in `exempt_principal_arns` (the worker).
pub fn deny_unscanned_reads_statement(bucket: &str, exempt_principal_arns: &[&str]) -> Value {
    let mut condition = json!({
        "StringNotEquals": { "s3:ExistingObjectTag/scan-status": "CLEAN" }
    });
    if !exempt_principal_arns.is_empty() {
        condition["ArnNotEquals"] = json!({ "aws:PrincipalArn": exempt_principal_arns });
    }
    json!({
        "Sid": "DenyReadsOfObjectsNotScannedClean",
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:GetObject", "s3:GetObjectVersion"],
        "Resource": format!("arn:aws:s3:::{bucket}/*"),
        "Condition": condition,
    })
}

/// A statement that denies every object-creating write under `prefix` of
/// `bucket` (PutObject, CompleteMultipartUpload, CopyObject) that does not
/// carry `If-None-Match` (condition key `s3:if-none-match`), so no upload
/// can replace an original, whoever signed it. Multipart's
/// CreateMultipartUpload and UploadPart, which take no conditional header,
/// are exempted by `s3:ObjectCreationOperation` (AWS S3 "Enforce
/// conditional writes on Amazon S3 buckets").
///
/// Presigned POST forms cannot carry `If-None-Match`: under this statement
/// S3 refuses them (403), so a deployment that uses POST forms must not
/// apply it (or must apply it to another prefix).
pub fn require_create_only_statement(bucket: &str, prefix: &str) -> Value {
    json!({
        "Sid": "DenyUploadsThatCouldOverwrite",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": format!("arn:aws:s3:::{bucket}/{prefix}*"),
        "Condition": {
            "Null": { "s3:if-none-match": "true" },
            "Bool": { "s3:ObjectCreationOperation": "true" }
        },
    })
}

/// A bucket policy document (JSON, `Version` 2012-10-17) holding
/// `statements`, e.g. [`deny_unscanned_reads_statement`] and
/// [`require_create_only_statement`].
pub fn policy_document(statements: &[Value]) -> String {
    let policy = json!({ "Version": "2012-10-17", "Statement": statements });
    serde_json::to_string_pretty(&policy).expect("JSON values serialize")
}

/// An S3 bucket policy (JSON) that denies `s3:GetObject` on every object of
/// `bucket` whose `scan-status` tag is not `CLEAN`, so nothing is served
/// before the scanner has passed it (the pattern of
/// bucket-antivirus-function). Principals in `exempt_principal_arns` (e.g.
/// the worker's role, which must read unscanned uploads) are not denied.
///
/// Uses the `s3:ExistingObjectTag/scan-status` condition key and, for the
/// exemption, `aws:PrincipalArn` (AWS S3 "Tagging and access control
/// policies" and IAM global condition keys docs).
pub fn deny_unscanned_reads_policy(bucket: &str, exempt_principal_arns: &[&str]) -> String {
    policy_document(&[deny_unscanned_reads_statement(
        bucket,
        exempt_principal_arns,
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_reads_unless_clean() {
        let p: serde_json::Value = serde_json::from_str(&deny_unscanned_reads_policy(
            "uploads",
            &["arn:aws:iam::123456789012:role/worker"],
        ))
        .unwrap();
        let st = &p["Statement"][0];
        assert_eq!(p["Version"], "2012-10-17");
        assert_eq!(st["Effect"], "Deny");
        assert_eq!(
            st["Action"],
            serde_json::json!(["s3:GetObject", "s3:GetObjectVersion"])
        );
        assert_eq!(st["Resource"], "arn:aws:s3:::uploads/*");
        assert_eq!(
            st["Condition"]["StringNotEquals"]["s3:ExistingObjectTag/scan-status"],
            "CLEAN"
        );
        assert_eq!(
            st["Condition"]["ArnNotEquals"]["aws:PrincipalArn"][0],
            "arn:aws:iam::123456789012:role/worker"
        );
        let bare: serde_json::Value =
            serde_json::from_str(&deny_unscanned_reads_policy("b", &[])).unwrap();
        assert!(
            bare["Statement"][0]["Condition"]
                .get("ArnNotEquals")
                .is_none()
        );
    }

    #[test]
    fn create_only_statement_exempts_multipart_steps() {
        let st = require_create_only_statement("uploads", "uploads/");
        assert_eq!(st["Effect"], "Deny");
        assert_eq!(st["Action"], "s3:PutObject");
        assert_eq!(st["Resource"], "arn:aws:s3:::uploads/uploads/*");
        assert_eq!(st["Condition"]["Null"]["s3:if-none-match"], "true");
        assert_eq!(
            st["Condition"]["Bool"]["s3:ObjectCreationOperation"],
            "true"
        );
        let doc: serde_json::Value = serde_json::from_str(&policy_document(&[
            deny_unscanned_reads_statement("uploads", &[]),
            st,
        ]))
        .unwrap();
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 2);
        assert_eq!(doc["Version"], "2012-10-17");
    }
}
