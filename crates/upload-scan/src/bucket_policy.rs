//! The bucket policy that makes the `scan-status` tag count.

use serde_json::json;

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
    let mut condition = json!({
        "StringNotEquals": { "s3:ExistingObjectTag/scan-status": "CLEAN" }
    });
    if !exempt_principal_arns.is_empty() {
        condition["ArnNotEquals"] = json!({ "aws:PrincipalArn": exempt_principal_arns });
    }
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyReadsOfObjectsNotScannedClean",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::{bucket}/*"),
            "Condition": condition,
        }]
    });
    serde_json::to_string_pretty(&policy).expect("JSON values serialize")
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
        assert_eq!(st["Action"], "s3:GetObject");
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
}
