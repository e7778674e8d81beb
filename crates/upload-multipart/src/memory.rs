//! The in-memory multipart store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use upload_core::storage::{etag_of, multipart_etag};
use upload_core::{
    ChecksumAlgorithm, CompletedPart, Error, MemoryStorage, MultipartStore, MultipartUploadInfo,
    ObjectKey, ObjectMeta, PartChecksum, PutOptions, Result, Storage, UploadedPart,
};

use crate::plan::MIN_PART_SIZE;

#[derive(Debug)]
struct Upload {
    key: ObjectKey,
    initiated: std::time::SystemTime,
    opts: PutOptions,
    parts: BTreeMap<u32, (Bytes, String, Option<PartChecksum>)>,
}

/// Multipart uploads into a [`MemoryStorage`] bucket, with S3's rules:
/// part numbers 1..=10000, a re-uploaded part replaces the earlier one,
/// completion checks order, ETags and the 5 MiB minimum of every part but the
/// last, the completed object gets the multipart ETag and an
/// `ObjectCreated:CompleteMultipartUpload` event, and a completed or aborted
/// upload ID is gone (`NoSuchUpload`). Checksums follow S3 too: an upload
/// created with an algorithm ([`PutOptions::checksum`]) takes only parts
/// with that checksum, verified (`BadDigest`), and a completion that names
/// each part's checksum; one created without takes no part checksums
/// (`InvalidRequest`, "Checksum Type mismatch").
#[derive(Debug)]
pub struct MemoryMultipartStore {
    storage: Arc<MemoryStorage>,
    uploads: Mutex<HashMap<String, Upload>>,
}

impl MemoryMultipartStore {
    /// Multipart uploads that complete into `storage`.
    pub fn new(storage: Arc<MemoryStorage>) -> Self {
        Self {
            storage,
            uploads: Mutex::new(HashMap::new()),
        }
    }

    /// Number of uploads in progress.
    pub fn uploads_in_progress(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Upload>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a part after S3's checks of its checksum type.
    fn store_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
        checksum: Option<&PartChecksum>,
    ) -> Result<UploadedPart> {
        upload_core::multipart::check_part_number(part_number)?;
        let etag = etag_of(&body);
        let size = body.len() as u64;
        let mut uploads = self.lock();
        let up = uploads
            .get_mut(upload_id)
            .filter(|u| u.key == *key)
            .ok_or_else(|| Self::no_such_upload(key, upload_id))?;
        let expected = up.opts.checksum;
        let actual = checksum.map(|c| c.algorithm);
        if expected != actual {
            let name = |a: Option<ChecksumAlgorithm>| {
                a.map_or("null".to_owned(), |a| a.as_str().to_lowercase())
            };
            return Err(Error::S3 {
                operation: "UploadPart",
                code: "InvalidRequest".into(),
                status: 400,
                message: format!(
                    "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                    name(expected),
                    name(actual)
                ),
            });
        }
        up.parts
            .insert(part_number, (body, etag.clone(), checksum.cloned()));
        Ok(UploadedPart {
            part_number,
            etag,
            size,
            checksum: checksum.cloned(),
        })
    }

    fn no_such_upload(key: &ObjectKey, upload_id: &str) -> Error {
        Error::NoSuchUpload {
            key: key.to_string(),
            upload_id: upload_id.chars().take(200).collect(),
        }
    }
}

impl MemoryMultipartStore {
    /// CompleteMultipartUpload; `create_only` refuses to replace an
    /// existing object (`If-None-Match: *`) even if the upload was not
    /// created create-only.
    async fn complete(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
        create_only: bool,
    ) -> Result<ObjectMeta> {
        // A repeated completion of an upload that already finished reports
        // the object it made (S3 behaves alike for a while after success).
        let exists = self.lock().get(upload_id).is_some_and(|u| u.key == *key);
        if !exists {
            if let Ok(want) = multipart_etag(parts.iter().map(|p| p.etag.as_str()))
                && let Ok(meta) = self.storage.head(key).await
                && meta.etag == want
            {
                return Ok(meta);
            }
            return Err(Self::no_such_upload(key, upload_id));
        }
        // Validate and assemble under the lock, but keep the upload until the
        // object is stored, so a failed completion can be retried.
        let (body, etag, opts) = {
            let uploads = self.lock();
            let up = uploads
                .get(upload_id)
                .filter(|u| u.key == *key)
                .ok_or_else(|| Self::no_such_upload(key, upload_id))?;
            if parts.is_empty()
                || parts
                    .windows(2)
                    .any(|w| w[0].part_number >= w[1].part_number)
            {
                return Err(Error::InvalidPartOrder);
            }
            let mut chosen = Vec::with_capacity(parts.len());
            for p in parts {
                if let Some(alg) = up.opts.checksum
                    && p.checksum.as_ref().is_none_or(|c| c.algorithm != alg)
                {
                    return Err(Error::S3 {
                        operation: "CompleteMultipartUpload",
                        code: "InvalidRequest".into(),
                        status: 400,
                        message: format!(
                            "The upload was created using a {} checksum. The complete request must include the checksum for each part.",
                            alg.as_str().to_lowercase()
                        ),
                    });
                }
                let stored = up
                    .parts
                    .get(&p.part_number)
                    .filter(|(_, e, c)| {
                        e == p.etag.trim_matches('"')
                            && (up.opts.checksum.is_none() || *c == p.checksum)
                    })
                    .ok_or_else(|| Error::InvalidPart {
                        part_number: p.part_number,
                        etag: p.etag.clone(),
                    })?;
                chosen.push((p.part_number, stored));
            }
            let last = chosen.len() - 1;
            for (i, (n, (b, _, _))) in chosen.iter().enumerate() {
                if i < last && (b.len() as u64) < MIN_PART_SIZE {
                    return Err(Error::EntityTooSmall {
                        part_number: *n,
                        size: b.len() as u64,
                        min: MIN_PART_SIZE,
                    });
                }
            }
            let etag = multipart_etag(chosen.iter().map(|(_, (_, e, _))| e.as_str()))?;
            let mut body =
                BytesMut::with_capacity(chosen.iter().map(|(_, (b, _, _))| b.len()).sum());
            for (_, (b, _, _)) in &chosen {
                body.extend_from_slice(b);
            }
            let mut opts = up.opts.clone();
            opts.create_only |= create_only;
            (body.freeze(), etag, opts)
        };
        let meta = self
            .storage
            .put_multipart_object(key, body, opts, etag)
            .await?;
        self.lock().remove(upload_id);
        Ok(meta)
    }
}

#[async_trait]
impl MultipartStore for MemoryMultipartStore {
    fn bucket(&self) -> &str {
        self.storage.bucket()
    }

    async fn create_multipart_upload(&self, key: &ObjectKey, opts: PutOptions) -> Result<String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.lock().insert(
            id.clone(),
            Upload {
                key: key.clone(),
                initiated: std::time::SystemTime::now(),
                opts,
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<UploadedPart> {
        self.store_part(key, upload_id, part_number, body, None)
    }

    /// Verifies the checksum as S3 does, before the part is stored.
    async fn upload_part_checked(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
        checksum: &PartChecksum,
    ) -> Result<UploadedPart> {
        upload_core::multipart::check_part_number(part_number)?;
        if !checksum.matches(&body) {
            return Err(upload_core::Error::BadDigest {
                part_number,
                algorithm: checksum.algorithm.as_str(),
                expected: checksum.value.clone(),
            });
        }
        self.store_part(key, upload_id, part_number, body, Some(checksum))
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<UploadedPart>> {
        let uploads = self.lock();
        let up = uploads
            .get(upload_id)
            .filter(|u| u.key == *key)
            .ok_or_else(|| Self::no_such_upload(key, upload_id))?;
        Ok(up
            .parts
            .iter()
            .map(|(n, (b, e, c))| UploadedPart {
                part_number: *n,
                etag: e.clone(),
                size: b.len() as u64,
                checksum: c.clone(),
            })
            .collect())
    }

    async fn complete_multipart_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectMeta> {
        self.complete(key, upload_id, parts, false).await
    }

    async fn complete_multipart_upload_create_only(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectMeta> {
        self.complete(key, upload_id, parts, true).await
    }

    async fn abort_multipart_upload(&self, key: &ObjectKey, upload_id: &str) -> Result<()> {
        let mut uploads = self.lock();
        match uploads.get(upload_id) {
            Some(u) if u.key == *key => {
                uploads.remove(upload_id);
                Ok(())
            }
            _ => Err(Self::no_such_upload(key, upload_id)),
        }
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<MultipartUploadInfo>> {
        let mut out: Vec<_> = self
            .lock()
            .iter()
            .filter(|(_, u)| u.key.as_str().starts_with(prefix))
            .map(|(id, u)| MultipartUploadInfo {
                key: u.key.clone(),
                upload_id: id.clone(),
                initiated: Some(u.initiated),
            })
            .collect();
        out.sort_by(|a, b| (a.key.as_str(), a.initiated).cmp(&(b.key.as_str(), b.initiated)));
        Ok(out)
    }
}
