//! Moving infected or unscannable objects out of the uploads location.

use std::sync::Arc;

use upload_core::{ObjectKey, PutOptions, Storage, Tags};

use crate::error::{Error, Result};
use crate::verdict::Verdict;
use crate::version::ScannerVersion;

/// Where a quarantined object now lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedObject {
    /// The quarantine bucket.
    pub bucket: String,
    /// The key in the quarantine bucket.
    pub key: ObjectKey,
}

/// A quarantine location: a bucket (usually a separate one that nothing
/// serves from) and a key prefix.
#[derive(Debug, Clone)]
pub struct Quarantine {
    storage: Arc<dyn Storage>,
    prefix: String,
}

impl Quarantine {
    /// Quarantines into `storage` under `prefix` (e.g. `quarantine/`; may be
    /// empty).
    pub fn new(storage: Arc<dyn Storage>, prefix: impl Into<String>) -> Self {
        Self {
            storage,
            prefix: prefix.into(),
        }
    }

    /// The quarantine key of `original`: the prefix, then the original key
    /// (`quarantine/uploads/u1/a.jpg`); when that would pass S3's 1024
    /// bytes, the prefix, then `_long-keys/{SHA-256 of the key}` (see
    /// [`ObjectKey::derived_root`]; the pipeline's manifest records which
    /// original it was).
    ///
    /// # Errors
    /// [`Error::Storage`] with an invalid-key error only for a prefix that
    /// is not a valid key prefix.
    pub fn key_for(&self, original: &ObjectKey) -> Result<ObjectKey> {
        let prefix = match self.prefix.as_str() {
            "" => String::new(),
            p if p.ends_with('/') => p.to_owned(),
            p => format!("{p}/"),
        };
        Ok(ObjectKey::new(original.derived_root(&prefix, 0))?)
    }

    /// The key prefix of quarantined objects (e.g. `quarantine/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The quarantine store.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Moves `key` from `source` into quarantine, tagged `scan-status`
    /// (`INFECTED` or `UNSCANNABLE`), `scan-signature` or `scan-reason`,
    /// `scanned-at` (RFC 3339, UTC), `source-bucket` and
    /// [`SOURCE_ETAG_TAG`] (the original's ETag: which version this is).
    ///
    /// The order never loses the object: copy, verify the copy's size and
    /// ETag against the original, then delete the original. Safe to repeat:
    /// if the original is already gone and the quarantine copy exists (an
    /// earlier attempt got that far), it succeeds.
    ///
    /// # Errors
    /// [`Error::NotQuarantinable`] for a clean verdict;
    /// [`Error::QuarantineMismatch`] if the copy does not match (the original
    /// stays); [`Error::Storage`] for store errors (the original stays unless
    /// the delete itself failed after a verified copy).
    pub async fn quarantine(
        &self,
        source: &dyn Storage,
        key: &ObjectKey,
        verdict: &Verdict,
    ) -> Result<QuarantinedObject> {
        self.quarantine_version(source, key, None, verdict, None)
            .await
    }

    /// As [`Quarantine::quarantine`], for exactly the version that was
    /// scanned.
    ///
    /// With `version_id` (a versioned bucket: the `versionId` of the event)
    /// that version is read and then deleted by its ID, so its bytes stay
    /// reachable under no version ID of the source bucket; a newer version
    /// stays where it is. Without it, the object is moved only if it is
    /// still the version whose ETag (without quotes) is `expected_etag`: a
    /// newer upload under the same key is never moved on an older version's
    /// verdict.
    ///
    /// # Errors
    /// As [`Quarantine::quarantine`]; [`Error::ObjectChanged`] when the
    /// object read has another ETag than `expected_etag` (nothing is
    /// moved).
    pub async fn quarantine_version(
        &self,
        source: &dyn Storage,
        key: &ObjectKey,
        version_id: Option<&str>,
        verdict: &Verdict,
        expected_etag: Option<&str>,
    ) -> Result<QuarantinedObject> {
        if verdict.is_clean() {
            return Err(Error::NotQuarantinable {
                key: key.to_string(),
            });
        }
        let qkey = self.key_for(key)?;
        let done = QuarantinedObject {
            bucket: self.storage.bucket().to_owned(),
            key: qkey.clone(),
        };
        let original = match source.get_version(key, version_id).await {
            Ok(o) => o,
            Err(upload_core::Error::NotFound { .. }) => {
                // Already moved by an earlier attempt?
                self.storage.head(&qkey).await?;
                return Ok(done);
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(expected) = expected_etag
            && original.meta.etag != expected
        {
            return Err(Error::ObjectChanged {
                key: key.to_string(),
                expected: expected.to_owned(),
                found: original.meta.etag,
            });
        }
        let mut tags = Tags::new();
        tags.insert("scan-status", verdict.status())?;
        match verdict {
            Verdict::Infected { signature } => {
                tags.insert("scan-signature", tag_value(signature))?
            }
            Verdict::Unscannable { reason } => {
                tags.insert("scan-reason", tag_value(&reason.to_string()))?
            }
            Verdict::Clean => {}
        }
        tags.insert("scanned-at", upload_core::timestamp::now_rfc3339())?;
        tags.insert("source-bucket", tag_value(source.bucket()))?;
        tags.insert(SOURCE_ETAG_TAG, tag_value(&original.meta.etag))?;
        let mut opts = PutOptions::default().with_tags(tags);
        opts.content_type = original.meta.content_type.clone();
        let copy = self.storage.put(&qkey, original.body.clone(), opts).await?;
        let check = self.storage.head(&qkey).await?;
        if check.size != original.meta.size || copy.etag != check.etag {
            return Err(Error::QuarantineMismatch {
                key: key.to_string(),
                reason: format!(
                    "copy is {} bytes with ETag {}, original {} bytes",
                    check.size, check.etag, original.meta.size
                ),
            });
        }
        if upload_core::storage::etag_of(&original.body) != check.etag {
            return Err(Error::QuarantineMismatch {
                key: key.to_string(),
                reason: "copy ETag is not the MD5 of the original bytes".into(),
            });
        }
        source.delete_version(key, version_id).await?;
        tracing::warn!(%key, version_id, quarantine_key = %qkey, status = verdict.status(), "quarantined");
        Ok(done)
    }
}

/// The tags a clean object gets: `scan-status=CLEAN` and `scanned-at`, so
/// that a bucket policy can deny reads of anything not clean.
pub fn clean_tags() -> Tags {
    clean_tags_for(None)
}

/// The tag of a quarantined copy holding the original's ETag:
/// `source-etag`.
pub const SOURCE_ETAG_TAG: &str = "source-etag";

/// The tag naming the signature database a clean verdict was reached
/// with: `scan-db` (see [`clean_tags_for`]).
pub const SCAN_DATABASE_TAG: &str = "scan-db";

/// [`clean_tags`], and `scan-db={database}` (e.g. `scan-db=27480`) when
/// `version` has a database number: three tags of the ten S3 allows.
pub fn clean_tags_for(version: Option<&ScannerVersion>) -> Tags {
    let mut tags = Tags::from_pairs([
        ("scan-status", "CLEAN".to_owned()),
        ("scanned-at", upload_core::timestamp::now_rfc3339()),
    ])
    .expect("two short tags are valid");
    if let Some(db) = version.and_then(|v| v.database) {
        tags.insert(SCAN_DATABASE_TAG, db.to_string())
            .expect("a third short tag is valid");
    }
    tags
}

/// Keeps only the characters S3 allows in tag values (letters, digits,
/// spaces and `+ - = . _ : / @`), at most 256 of them.
fn tag_value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || " +-=._:/@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{EICAR_SIGNATURE, eicar};
    use upload_core::MemoryStorage;

    #[tokio::test]
    async fn moves_infected_object_with_tags_and_is_repeatable() {
        let uploads = MemoryStorage::new("uploads").unwrap();
        let q = Quarantine::new(
            Arc::new(MemoryStorage::new("quarantine").unwrap()),
            "infected/",
        );
        let key = ObjectKey::new("uploads/u/x.pdf").unwrap();
        uploads
            .put(
                &key,
                eicar(),
                PutOptions::default().with_content_type("application/pdf"),
            )
            .await
            .unwrap();
        let v = Verdict::Infected {
            signature: EICAR_SIGNATURE.into(),
        };
        let moved = q.quarantine(&uploads, &key, &v).await.unwrap();
        assert_eq!(moved.bucket, "quarantine");
        assert_eq!(moved.key.as_str(), "infected/uploads/u/x.pdf");
        assert!(matches!(
            uploads.head(&key).await,
            Err(upload_core::Error::NotFound { .. })
        ));
        let got = q.storage().get(&moved.key).await.unwrap();
        assert_eq!(got.body, eicar());
        assert_eq!(got.meta.content_type.as_deref(), Some("application/pdf"));
        let tags = q.storage().get_tags(&moved.key).await.unwrap();
        assert_eq!(tags.get("scan-status"), Some("INFECTED"));
        assert_eq!(tags.get("scan-signature"), Some(EICAR_SIGNATURE));
        assert_eq!(tags.get("source-bucket"), Some("uploads"));
        assert_eq!(
            tags.get(SOURCE_ETAG_TAG),
            Some(upload_core::storage::etag_of(&eicar()).as_str())
        );
        assert_eq!(tags.get("scanned-at").unwrap().len(), 20);
        // A redelivered message repeats the move: still Ok, nothing lost.
        assert_eq!(q.quarantine(&uploads, &key, &v).await.unwrap(), moved);
        // Clean verdicts are refused.
        assert!(matches!(
            q.quarantine(&uploads, &key, &Verdict::Clean).await,
            Err(Error::NotQuarantinable { .. })
        ));
    }

    #[tokio::test]
    async fn missing_everywhere_is_an_error() {
        let uploads = MemoryStorage::new("uploads").unwrap();
        let q = Quarantine::new(Arc::new(MemoryStorage::new("quarantine").unwrap()), "");
        let key = ObjectKey::new("gone").unwrap();
        let v = Verdict::Infected {
            signature: "x".into(),
        };
        assert!(matches!(
            q.quarantine(&uploads, &key, &v).await,
            Err(Error::Storage(upload_core::Error::NotFound { .. }))
        ));
    }

    #[test]
    fn clean_tags_name_the_database() {
        let v = ScannerVersion::new("ClamAV 1.4.3", Some(27480)).unwrap();
        let tags = clean_tags_for(Some(&v));
        assert_eq!(tags.len(), 3);
        assert_eq!(tags.get("scan-status"), Some("CLEAN"));
        assert_eq!(tags.get(SCAN_DATABASE_TAG), Some("27480"));
        let no_db = ScannerVersion::new("ClamAV 1.4.3", None).unwrap();
        assert_eq!(clean_tags_for(Some(&no_db)).get(SCAN_DATABASE_TAG), None);
        assert_eq!(clean_tags().len(), 2);
    }

    #[test]
    fn tag_values_are_sanitised() {
        assert_eq!(tag_value("Win.Test.EICAR_HDB-1"), "Win.Test.EICAR_HDB-1");
        assert_eq!(tag_value("a;b{c}"), "a_b_c_");
        assert_eq!(tag_value(&"x".repeat(300)).len(), 256);
    }
}
