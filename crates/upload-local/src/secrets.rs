//! The keys the local mode keeps in its data directory, so that presigned
//! URLs and multipart session tokens stay valid across a restart.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use upload_presign::Credentials;

use crate::error::LocalError;

/// File name of the secrets under the data directory.
pub const SECRETS_FILE: &str = "secrets.json";

/// The local mode's keys: the SigV4 credentials the endpoint verifies and
/// the presigner signs with, and the upload API's session secret (the key
/// of its multipart session tokens). Made once, from the operating
/// system's random source, and kept in `DATA/secrets.json` (mode 0600 on
/// Unix).
#[derive(Clone, Serialize, Deserialize)]
pub struct Secrets {
    /// Access key ID: `LOCAL` and 15 uppercase hex digits (20 characters,
    /// like an AWS one).
    pub access_key_id: String,
    /// Secret access key: 40 hex digits.
    pub secret_access_key: String,
    /// The session secret, 64 hex digits (32 bytes).
    pub session_secret: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

impl Secrets {
    /// New random keys.
    pub fn generate() -> Self {
        Self {
            access_key_id: format!("LOCAL{}", &random_hex(8)[..15]).to_ascii_uppercase(),
            secret_access_key: random_hex(20),
            session_secret: random_hex(32),
        }
    }

    /// The keys in `dir/secrets.json`, made and written (mode 0600, then
    /// renamed into place) when the file does not exist.
    ///
    /// # Errors
    /// [`LocalError::CorruptSecrets`] for a file that is not one this
    /// function wrote (it is left as it is); [`LocalError::Io`] when it
    /// cannot be read or written.
    pub fn load_or_create(dir: &Path) -> Result<Self, LocalError> {
        let path = dir.join(SECRETS_FILE);
        match std::fs::read(&path) {
            Ok(raw) => {
                let s: Self =
                    serde_json::from_slice(&raw).map_err(|e| LocalError::CorruptSecrets {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                s.session_secret_bytes()
                    .map_err(|reason| LocalError::CorruptSecrets {
                        path: path.clone(),
                        reason,
                    })?;
                if s.access_key_id.is_empty() || s.secret_access_key.is_empty() {
                    return Err(LocalError::CorruptSecrets {
                        path,
                        reason: "empty access key".into(),
                    });
                }
                Ok(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = Self::generate();
                write_private(&path, &serde_json::to_vec_pretty(&s).expect("serializes"))?;
                tracing::info!(path = %path.display(), "new local-mode keys written");
                Ok(s)
            }
            Err(source) => Err(LocalError::Io { path, source }),
        }
    }

    /// The SigV4 credentials.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(&self.access_key_id, &self.secret_access_key)
    }

    /// The session secret as 32 bytes.
    ///
    /// # Errors
    /// A message when it is not 64 hex digits.
    pub fn session_secret_bytes(&self) -> Result<[u8; 32], String> {
        hex::decode(&self.session_secret)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| "session_secret must be 64 hex digits".to_owned())
    }
}

/// Writes `bytes` to a temporary file readable by its owner only, syncs
/// it, and renames it to `path`.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), LocalError> {
    let tmp: PathBuf = path.with_extension("json.tmp");
    let io = |source| LocalError::Io {
        path: tmp.clone(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io)?;
    // A temporary file left by an earlier crash keeps its old mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|source| LocalError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_read_back_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = Secrets::load_or_create(dir.path()).unwrap();
        assert_eq!(a.access_key_id.len(), 20);
        assert!(a.access_key_id.starts_with("LOCAL"));
        assert_eq!(a.secret_access_key.len(), 40);
        assert_eq!(a.session_secret_bytes().unwrap().len(), 32);
        let b = Secrets::load_or_create(dir.path()).unwrap();
        assert_eq!(
            (&a.access_key_id, &a.secret_access_key, &a.session_secret),
            (&b.access_key_id, &b.secret_access_key, &b.session_secret)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRETS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_ne!(
            Secrets::generate().secret_access_key,
            a.secret_access_key,
            "random"
        );
    }

    #[test]
    fn a_damaged_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(SECRETS_FILE);
        std::fs::write(
            &p,
            br#"{"access_key_id":"A","secret_access_key":"B","session_secret":"zz"}"#,
        )
        .unwrap();
        let e = Secrets::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(e, LocalError::CorruptSecrets { .. }), "{e}");
        assert!(std::fs::read(&p).unwrap().ends_with(b"\"zz\"}"), "kept");
    }
}
