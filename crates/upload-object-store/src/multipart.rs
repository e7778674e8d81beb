//! [`MultipartStore`] on any `object_store` backend.
//!
//! `object_store`'s own multipart API cannot carry S3's: its uploads live
//! in one process (no upload ID to resume from elsewhere), it has no
//! ListParts or ListMultipartUploads, parts go in order, and
//! `LocalFileSystem`/`InMemory` lack its low-level `MultipartStore`. So the
//! adapter keeps each part as an object under
//! `.upload-sdk/multipart/{upload ID}/` with a JSON record (number, MD5
//! ETag, size, checksum); completion streams the named parts, verifying
//! each MD5, into one `object_store` multipart upload of a staging object,
//! then renames it into place (`rename_if_not_exists` for a create-only
//! completion, which is atomic on every backend here) and writes its
//! sidecar. Every part is written twice (once as a part, once into the
//! object); memory stays at one 8 MiB chunk in flight.

use std::collections::BTreeMap;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutMultipartOptions, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use upload_core::multipart::{
    ChecksumAlgorithm, CompletedPart, MultipartStore, MultipartUploadInfo, PartChecksum,
    UploadedPart, check_part_number,
};
use upload_core::storage::{ObjectMeta, PutOptions, Storage, etag_of, multipart_etag};
use upload_core::{Error, ObjectKey, Result, Tags};

use crate::sidecar::tag_map;
use crate::storage::{ObjectStoreStorage, RESERVED_PREFIX};

/// 5 MiB: S3's minimum for every part but the last.
const MIN_PART: u64 = 5 * 1024 * 1024;
/// Chunk size of the assembling multipart upload: 8 MiB.
const ASSEMBLY_CHUNK: usize = 8 * 1024 * 1024;

/// An upload in progress: `upload.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadRecord {
    key: String,
    initiated: SystemTime,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    cache_control: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    checksum: Option<ChecksumAlgorithm>,
}

impl UploadRecord {
    fn put_options(&self) -> PutOptions {
        let mut tags = Tags::new();
        for (k, v) in &self.tags {
            let _ = tags.insert(k.clone(), v.clone());
        }
        let mut o = PutOptions::default().with_tags(tags);
        o.content_type = self.content_type.clone();
        o.cache_control = self.cache_control.clone();
        o.metadata = self.metadata.clone();
        o
    }
}

/// A finished upload: `completed.json`, so that a repeated completion
/// answers with the object it made.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CompletedRecord {
    key: String,
    parts: Vec<(u32, String)>,
}

fn upload_dir(id: &uuid::Uuid) -> String {
    format!("{RESERVED_PREFIX}multipart/{}", id.hyphenated())
}

fn part_bytes(id: &uuid::Uuid, n: u32) -> Path {
    Path::from(format!("{}/part-{n:05}.bin", upload_dir(id)))
}

fn part_record(id: &uuid::Uuid, n: u32) -> Path {
    Path::from(format!("{}/part-{n:05}.json", upload_dir(id)))
}

fn file(id: &uuid::Uuid, name: &str) -> Path {
    Path::from(format!("{}/{name}", upload_dir(id)))
}

fn invalid_request(operation: &'static str, message: String) -> Error {
    Error::S3 {
        operation,
        code: "InvalidRequest".to_owned(),
        status: 400,
        message,
    }
}

impl ObjectStoreStorage {
    fn no_such_upload(key: &ObjectKey, upload_id: &str) -> Error {
        Error::NoSuchUpload {
            key: key.to_string(),
            upload_id: upload_id.chars().take(200).collect(),
        }
    }

    async fn read_json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<Option<T>> {
        match self.store().get(path).await {
            Ok(r) => {
                let b = r
                    .bytes()
                    .await
                    .map_err(|e| self.err(path.as_ref(), "GetObject", e))?;
                Ok(serde_json::from_slice(&b).ok())
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(path.as_ref(), "GetObject", e)),
        }
    }

    async fn write_json<T: Serialize>(&self, path: &Path, v: &T, mode: PutMode) -> Result<()> {
        let body = serde_json::to_vec(v).map_err(|e| Error::Unavailable {
            reason: format!("{path}: {e}"),
        })?;
        let opts = object_store::PutOptions {
            mode,
            ..Default::default()
        };
        self.store()
            .put_opts(path, PutPayload::from(body), opts)
            .await
            .map_err(|e| self.err(path.as_ref(), "PutObject", e))?;
        Ok(())
    }

    /// The upload `upload_id` of `key`, if it is in progress.
    async fn upload(&self, key: &ObjectKey, upload_id: &str) -> Result<(uuid::Uuid, UploadRecord)> {
        let id =
            uuid::Uuid::try_parse(upload_id).map_err(|_| Self::no_such_upload(key, upload_id))?;
        match self
            .read_json::<UploadRecord>(&file(&id, "upload.json"))
            .await?
        {
            Some(r) if r.key == key.as_str() => Ok((id, r)),
            _ => Err(Self::no_such_upload(key, upload_id)),
        }
    }

    async fn store_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
        checksum: Option<&PartChecksum>,
    ) -> Result<UploadedPart> {
        check_part_number(part_number)?;
        let (id, rec) = self.upload(key, upload_id).await?;
        match (rec.checksum, checksum) {
            (None, None) => {}
            (Some(a), None) => {
                return Err(invalid_request(
                    "UploadPart",
                    format!(
                        "part {part_number} of {key}: the upload requires {}",
                        a.header_name()
                    ),
                ));
            }
            (None, Some(c)) => {
                return Err(invalid_request(
                    "UploadPart",
                    format!(
                        "part {part_number} of {key}: checksum type mismatch, the upload declared none but the part has {}",
                        c.algorithm.as_str()
                    ),
                ));
            }
            (Some(a), Some(c)) if a != c.algorithm => {
                return Err(invalid_request(
                    "UploadPart",
                    format!(
                        "part {part_number} of {key}: checksum type mismatch, the upload declared {} but the part has {}",
                        a.as_str(),
                        c.algorithm.as_str()
                    ),
                ));
            }
            (Some(_), Some(c)) => {
                if !c.matches(&body) {
                    return Err(Error::BadDigest {
                        part_number,
                        algorithm: c.algorithm.as_str(),
                        expected: c.value.clone(),
                    });
                }
            }
        }
        let part = UploadedPart {
            part_number,
            etag: etag_of(&body),
            size: body.len() as u64,
            checksum: checksum.cloned(),
        };
        self.store()
            .put(&part_bytes(&id, part_number), PutPayload::from(body))
            .await
            .map_err(|e| self.err(key.as_str(), "UploadPart", e))?;
        self.write_json(&part_record(&id, part_number), &part, PutMode::Overwrite)
            .await?;
        Ok(part)
    }

    async fn parts(&self, id: &uuid::Uuid) -> Result<Vec<UploadedPart>> {
        let dir = Path::from(upload_dir(id));
        let records: Vec<Path> = self
            .store()
            .list(Some(&dir))
            .map_ok(|m| m.location)
            .try_filter(|p| {
                let name = p.filename().unwrap_or("");
                futures::future::ready(name.starts_with("part-") && name.ends_with(".json"))
            })
            .try_collect()
            .await
            .map_err(|e| self.err(dir.as_ref(), "ListParts", e))?;
        let mut parts: Vec<UploadedPart> = futures::stream::iter(records)
            .map(|p| async move { self.read_json::<UploadedPart>(&p).await })
            .buffered(8)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    async fn complete(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
        create_only: bool,
    ) -> Result<ObjectMeta> {
        if parts.is_empty()
            || parts
                .windows(2)
                .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(Error::InvalidPartOrder);
        }
        let named: Vec<(u32, String)> = parts
            .iter()
            .map(|p| (p.part_number, p.etag.trim_matches('"').to_owned()))
            .collect();
        let path = self.path(key)?;
        let (id, rec) = match self.upload(key, upload_id).await {
            Ok(found) => found,
            Err(Error::NoSuchUpload { .. }) => {
                // Finished already? The same completion gets the object.
                let id = uuid::Uuid::try_parse(upload_id)
                    .map_err(|_| Self::no_such_upload(key, upload_id))?;
                let done = self
                    .read_json::<CompletedRecord>(&file(&id, "completed.json"))
                    .await?;
                return match done {
                    Some(d) if d.key == key.as_str() && d.parts == named => self.head(key).await,
                    _ => Err(Self::no_such_upload(key, upload_id)),
                };
            }
            Err(e) => return Err(e),
        };
        let stored: BTreeMap<u32, UploadedPart> = self
            .parts(&id)
            .await?
            .into_iter()
            .map(|p| (p.part_number, p))
            .collect();
        let mut chosen = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            let invalid = || Error::InvalidPart {
                part_number: p.part_number,
                etag: p.etag.clone(),
            };
            let s = stored.get(&p.part_number).ok_or_else(invalid)?;
            if s.etag != p.etag.trim_matches('"') {
                return Err(invalid());
            }
            if rec.checksum.is_some() && p.checksum.as_ref() != s.checksum.as_ref() {
                return Err(invalid());
            }
            if i + 1 < parts.len() && s.size < MIN_PART {
                return Err(Error::EntityTooSmall {
                    part_number: p.part_number,
                    size: s.size,
                    min: MIN_PART,
                });
            }
            chosen.push(s.clone());
        }
        let exists = || Error::AlreadyExists {
            bucket: Storage::bucket(self).to_owned(),
            key: key.to_string(),
        };
        if create_only {
            match self.store().head(&path).await {
                Ok(_) => return Err(exists()),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(key.as_str(), "CompleteMultipartUpload", e)),
            }
        }
        let opts = rec.put_options();
        let staging = file(&id, "assembled");
        self.assemble(key, &id, &chosen, &staging, &opts).await?;
        let moved = if create_only {
            self.store().rename_if_not_exists(&staging, &path).await
        } else {
            self.store().rename(&staging, &path).await
        };
        if let Err(e) = moved {
            let _ = self.store().delete(&staging).await;
            return Err(match e {
                object_store::Error::AlreadyExists { .. } => exists(),
                e => self.err(key.as_str(), "CompleteMultipartUpload", e),
            });
        }
        let etag = multipart_etag(chosen.iter().map(|p| p.etag.as_str()))?;
        let m = self
            .store()
            .head(&path)
            .await
            .map_err(|e| self.err(key.as_str(), "CompleteMultipartUpload", e))?;
        if let Some(sc) = Self::new_sidecar(m.e_tag.clone(), m.size, etag, &opts) {
            self.write_sidecar(&path, &sc).await?;
        }
        self.write_json(
            &file(&id, "completed.json"),
            &CompletedRecord {
                key: key.to_string(),
                parts: named,
            },
            PutMode::Overwrite,
        )
        .await?;
        self.remove_upload(&id, false).await?;
        self.head(key).await
    }

    /// Streams `parts` into one `object_store` multipart upload at
    /// `staging`, checking each part's bytes against its MD5.
    async fn assemble(
        &self,
        key: &ObjectKey,
        id: &uuid::Uuid,
        parts: &[UploadedPart],
        staging: &Path,
        opts: &PutOptions,
    ) -> Result<()> {
        let err = |e| self.err(key.as_str(), "CompleteMultipartUpload", e);
        let upload = self
            .store()
            .put_multipart_opts(
                staging,
                PutMultipartOptions {
                    attributes: self.attributes(opts),
                    ..Default::default()
                },
            )
            .await
            .map_err(err)?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, ASSEMBLY_CHUNK);
        for p in parts {
            use md5::Digest;
            let mut md5 = md5::Md5::new();
            let got = match self.store().get(&part_bytes(id, p.part_number)).await {
                Ok(r) => r,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(match e {
                        object_store::Error::NotFound { .. } => Error::InvalidPart {
                            part_number: p.part_number,
                            etag: p.etag.clone(),
                        },
                        e => err(e),
                    });
                }
            };
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(err(e));
                    }
                };
                md5.update(&chunk);
                if let Err(e) = w.wait_for_capacity(2).await {
                    return Err(err(e));
                }
                w.put(chunk);
            }
            if hex::encode(md5.finalize()) != p.etag {
                // The part was replaced while we read it.
                let _ = w.abort().await;
                return Err(Error::InvalidPart {
                    part_number: p.part_number,
                    etag: p.etag.clone(),
                });
            }
        }
        w.finish().await.map_err(err)?;
        Ok(())
    }

    /// Deletes the objects of an upload (all of them, or all but
    /// `completed.json`).
    async fn remove_upload(&self, id: &uuid::Uuid, everything: bool) -> Result<()> {
        let dir = Path::from(upload_dir(id));
        let paths: Vec<Path> = self
            .store()
            .list(Some(&dir))
            .map_ok(|m| m.location)
            .try_filter(|p| {
                futures::future::ready(everything || p.filename() != Some("completed.json"))
            })
            .try_collect()
            .await
            .map_err(|e| self.err(dir.as_ref(), "AbortMultipartUpload", e))?;
        // upload.json first: once it is gone the upload is over.
        let upload = file(id, "upload.json");
        match self.store().delete(&upload).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.err(upload.as_ref(), "AbortMultipartUpload", e)),
        }
        for p in paths.iter().filter(|p| **p != upload) {
            match self.store().delete(p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(p.as_ref(), "AbortMultipartUpload", e)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MultipartStore for ObjectStoreStorage {
    fn bucket(&self) -> &str {
        Storage::bucket(self)
    }

    async fn create_multipart_upload(&self, key: &ObjectKey, opts: PutOptions) -> Result<String> {
        self.path(key)?;
        let id = uuid::Uuid::new_v4();
        let rec = UploadRecord {
            key: key.to_string(),
            initiated: SystemTime::now(),
            content_type: opts.content_type,
            cache_control: opts.cache_control,
            metadata: opts.metadata,
            tags: tag_map(&opts.tags),
            checksum: opts.checksum,
        };
        self.write_json(&file(&id, "upload.json"), &rec, PutMode::Create)
            .await?;
        Ok(id.hyphenated().to_string())
    }

    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<UploadedPart> {
        self.store_part(key, upload_id, part_number, body, None)
            .await
    }

    async fn upload_part_checked(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
        checksum: &PartChecksum,
    ) -> Result<UploadedPart> {
        self.store_part(key, upload_id, part_number, body, Some(checksum))
            .await
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<UploadedPart>> {
        let (id, _) = self.upload(key, upload_id).await?;
        self.parts(&id).await
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
        let (id, _) = self.upload(key, upload_id).await?;
        self.remove_upload(&id, true).await
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<MultipartUploadInfo>> {
        let dir = Path::from(format!("{RESERVED_PREFIX}multipart"));
        let records: Vec<Path> = match self
            .store()
            .list(Some(&dir))
            .map_ok(|m| m.location)
            .try_filter(|p| futures::future::ready(p.filename() == Some("upload.json")))
            .try_collect()
            .await
        {
            Ok(v) => v,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(self.err(prefix, "ListMultipartUploads", e)),
        };
        let mut out: Vec<MultipartUploadInfo> = futures::stream::iter(records)
            .map(|p| async move {
                let rec = self.read_json::<UploadRecord>(&p).await?;
                let id = p
                    .parts()
                    .nth(2)
                    .map(|s| s.as_ref().to_owned())
                    .unwrap_or_default();
                Ok::<_, Error>(rec.and_then(|r| {
                    let key = ObjectKey::new(r.key).ok()?;
                    key.as_str()
                        .starts_with(prefix)
                        .then_some(MultipartUploadInfo {
                            key,
                            upload_id: id,
                            initiated: Some(r.initiated),
                        })
                }))
            })
            .buffered(8)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        out.sort_by(|a, b| (a.key.as_str(), a.initiated).cmp(&(b.key.as_str(), b.initiated)));
        Ok(out)
    }
}
