//! Access keys.

use std::fmt;

/// An AWS-style access key: ID, secret and, for temporary credentials, a
/// session token (sent as `X-Amz-Security-Token`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key ID, e.g. `AKIAIOSFODNN7EXAMPLE`.
    pub access_key_id: String,
    /// Secret access key. Never printed by `Debug`.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// When temporary credentials expire; presigned URLs never outlive
    /// them ([`crate::Error::CredentialsExpireFirst`]).
    pub expires_at: Option<std::time::SystemTime>,
}

impl Credentials {
    /// Long-term credentials without a session token.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            expires_at: None,
        }
    }

    /// Sets when the credentials expire.
    pub fn with_expiry(mut self, expires_at: std::time::SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Adds a session token (temporary credentials).
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// Fresh random credentials, for a local endpoint that only this process
    /// signs for.
    pub fn random() -> Self {
        let id = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .to_ascii_uppercase();
        Self::new(
            format!("LOCAL{}", &id[..15]),
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}
