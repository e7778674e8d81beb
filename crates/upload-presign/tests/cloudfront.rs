//! CloudFront signed URLs against vectors produced with openssl (see
//! `tests/data/cloudfront-vectors.md`): RSA-SHA1 PKCS #1 v1.5 signatures
//! are deterministic, so ours must equal openssl's byte for byte.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use upload_presign::cloudfront::{
    CloudFrontError, CloudFrontSigner, CustomPolicy, cloudfront_base64,
};

const PKCS8: &str = include_str!("data/cloudfront-test-key.pem");
const PKCS1: &str = include_str!("data/cloudfront-test-key-pkcs1.pem");
const CANNED_SIG: &str = "HrLDA-cfdC13EpnjFDb0HcUQ2maXi3fJhpcpwQRa9UdeF-Mxd96Sj7K9TwdYFLm5YUfqhPwjqPtyAmKYG8xokwqRjKNvIaYH81Tks~yUlTCHmQ3dwAwTbGM29naWUP3Ptw9-bUcCwiCpiQdPDmciHLuGelOstt23gaozJD0uwAhV2895J13xPpAusqligeda-2QaXXW36bxqICmC0aQ~HpKrU3SSkWDZcOyWodH7puPM75LFB~trtMcWzpGZvbDYfXbFyVtJFPzvq7TwKFX9gyq9LhXvlH5-n8bWEYwZ3xQ4o3pgzVracN6HrTVuAc12PF-sRQunA572wpsz-RMM6g__";
const CUSTOM_SIG: &str = "Z~kF-X2L7wEswP4OK2E8nHEqmXfcdRji2hSoo~o6txNJfptOF1N2-0XPJrA7SH62f8YoDckeEWJNzXrfrkk3-V3fzSVQL60V5PM7uwCslYWTBo5opevPotDzuJem~A3KwRhtm3hJdBbWqLZIO~l9g~bEBpzubxQaw6TVHcsnXbsjaZY4l-bPALcHMbaWQIVyoP3W8mYd4XLU2-AZxghIwR0uUtRlYrmfTUZQRlJjwUHBXzfj0NWd6sZT3P6OBa5eDftt0621-6M95QWfN56EVHFzXrXvBLc7M30cs~jLK3sDD~FxHjXqpjUeI5Mwvl2mTseYMnVOxa5Y8WdjXdl8HA__";
const CUSTOM_POLICY_B64: &str = "eyJTdGF0ZW1lbnQiOlt7IlJlc291cmNlIjoiaHR0cHM6Ly9kMTExMTExYWJjZGVmOC5jbG91ZGZyb250Lm5ldC92YXJpYW50cy91MS8qIiwiQ29uZGl0aW9uIjp7IkRhdGVMZXNzVGhhbiI6eyJBV1M6RXBvY2hUaW1lIjoxNzY3MjI1NjAwfSwiRGF0ZUdyZWF0ZXJUaGFuIjp7IkFXUzpFcG9jaFRpbWUiOjE3NjcyMjIwMDB9LCJJcEFkZHJlc3MiOnsiQVdTOlNvdXJjZUlwIjoiMTkyLjAuMi4wLzI0In19fV19";
const URL: &str = "https://d111111abcdef8.cloudfront.net/variants/u1/photo.jpg/thumb.webp";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn canned_policy_matches_openssl() {
    for pem in [PKCS8, PKCS1] {
        let s = CloudFrontSigner::from_pem("K2JCJMDEHXQW5F", pem).unwrap();
        let signed = s.sign_canned(URL, at(1_767_225_600)).unwrap();
        assert_eq!(
            signed,
            format!("{URL}?Expires=1767225600&Signature={CANNED_SIG}&Key-Pair-Id=K2JCJMDEHXQW5F")
        );
    }
}

#[test]
fn custom_policy_matches_openssl() {
    let s = CloudFrontSigner::from_pem("K2JCJMDEHXQW5F", PKCS8).unwrap();
    let policy = CustomPolicy {
        resource: "https://d111111abcdef8.cloudfront.net/variants/u1/*".into(),
        expires_at: at(1_767_225_600),
        starts_at: Some(at(1_767_222_000)),
        source_ip: Some("192.0.2.0/24".into()),
    };
    let signed = s.sign_custom(&format!("{URL}?v=2"), &policy).unwrap();
    assert_eq!(
        signed,
        format!(
            "{URL}?v=2&Policy={CUSTOM_POLICY_B64}&Signature={CUSTOM_SIG}&Key-Pair-Id=K2JCJMDEHXQW5F"
        )
    );
}

#[test]
fn bad_inputs_are_typed_errors() {
    assert!(matches!(
        CloudFrontSigner::from_pem("K1", "not a key"),
        Err(CloudFrontError::InvalidKey(_))
    ));
    assert!(matches!(
        CloudFrontSigner::from_pem("k-1", PKCS8),
        Err(CloudFrontError::InvalidKeyPairId(_))
    ));
    let s = CloudFrontSigner::from_pem("K1", PKCS8).unwrap();
    assert!(format!("{s:?}").contains("<redacted>"));
    assert!(matches!(
        s.sign_canned("ftp://x/y", at(1)),
        Err(CloudFrontError::InvalidUrl { .. })
    ));
    assert!(matches!(
        s.sign_canned(&format!("{URL}?Signature=x"), at(1)),
        Err(CloudFrontError::InvalidUrl { .. })
    ));
    let p = |starts: Option<u64>, ip: Option<&str>| CustomPolicy {
        resource: URL.into(),
        expires_at: at(100),
        starts_at: starts.map(at),
        source_ip: ip.map(str::to_owned),
    };
    assert!(matches!(
        s.sign_custom(URL, &p(Some(100), None)),
        Err(CloudFrontError::InvalidTimes(_))
    ));
    for bad in ["192.0.2.0", "192.0.2.0/33", "300.1.1.1/8", "::1/129", "x/1"] {
        assert!(
            matches!(
                s.sign_custom(URL, &p(None, Some(bad))),
                Err(CloudFrontError::InvalidIpRange(_))
            ),
            "{bad}"
        );
    }
    assert!(s.sign_custom(URL, &p(None, Some("2001:db8::/32"))).is_ok());
    assert_eq!(cloudfront_base64(&[0xfb, 0xff]), "-~8_");
}
