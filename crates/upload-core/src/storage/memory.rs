use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{ByteStream, GetResult, ObjectMeta, PutOptions, Storage, Tags, etag_of};
use crate::error::{Error, Result};
use crate::event::{EventSink, S3EventRecord};
use crate::key::ObjectKey;

/// Chunk size of [`MemoryStorage::get_stream`]: 64 KiB.
const STREAM_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Entry {
    body: Bytes,
    meta: ObjectMeta,
    tags: Tags,
}

/// The objects of a bucket: the current version of each key, and (with
/// versioning on) the older versions, oldest first. A key whose current
/// version was deleted without a version ID (a delete marker, in S3) is
/// only in `noncurrent`.
#[derive(Debug, Default)]
struct Objects {
    current: BTreeMap<ObjectKey, Entry>,
    noncurrent: BTreeMap<ObjectKey, Vec<Entry>>,
}

impl Objects {
    /// `version_id` `"null"` names an object written without versioning,
    /// as in S3.
    fn is_version(e: &Entry, version_id: &str) -> bool {
        e.meta.version_id.as_deref().unwrap_or("null") == version_id
    }

    fn find(&self, key: &ObjectKey, version_id: Option<&str>) -> Option<&Entry> {
        let current = self.current.get(key);
        let Some(v) = version_id else { return current };
        current.filter(|e| Self::is_version(e, v)).or_else(|| {
            self.noncurrent
                .get(key)?
                .iter()
                .find(|e| Self::is_version(e, v))
        })
    }

    fn find_mut(&mut self, key: &ObjectKey, version_id: Option<&str>) -> Option<&mut Entry> {
        let Some(v) = version_id else {
            return self.current.get_mut(key);
        };
        if self
            .current
            .get(key)
            .is_some_and(|e| Self::is_version(e, v))
        {
            return self.current.get_mut(key);
        }
        self.noncurrent
            .get_mut(key)?
            .iter_mut()
            .find(|e| Self::is_version(e, v))
    }

    /// Moves the current version of `key` to the older versions.
    fn retire(&mut self, key: &ObjectKey) -> Option<()> {
        let old = self.current.remove(key)?;
        self.noncurrent.entry(key.clone()).or_default().push(old);
        Some(())
    }
}

/// One in-memory bucket that behaves like S3.
///
/// It keeps real bytes, computes S3 ETags (MD5, or the multipart form),
/// honours create-only writes, clamps ranges as S3 does and, when given an
/// [`EventSink`] with [`MemoryStorage::with_events`], publishes an S3-format
/// event notification after every successful write
/// (`ObjectCreated:Put`, `ObjectCreated:Copy`,
/// `ObjectCreated:CompleteMultipartUpload`) and delete
/// (`ObjectRemoved:Delete`). As with S3, a failed notification does not fail
/// the write: it is logged.
///
/// With [`MemoryStorage::with_versioning`] it keeps every version as a
/// versioned S3 bucket does: each write gets a version ID, older versions
/// stay readable and taggable by version ID, a delete without a version ID
/// hides the object (`ObjectRemoved:DeleteMarkerCreated`) and one with a
/// version ID removes that version for good; event records carry
/// `versionId`.
#[derive(Debug)]
pub struct MemoryStorage {
    bucket: String,
    region: String,
    objects: Mutex<Objects>,
    events: Option<Arc<dyn EventSink>>,
    sequencer: AtomicU64,
    versioning: bool,
}

impl MemoryStorage {
    /// An empty bucket named `bucket`, in region `us-east-1`, publishing no
    /// events.
    ///
    /// # Errors
    /// [`Error::InvalidBucketName`] unless `bucket` is 3..=63 characters of
    /// lowercase ASCII letters, digits, `-` and `.`, starting and ending
    /// with a letter or digit (the S3 naming rules).
    pub fn new(bucket: &str) -> Result<Self> {
        check_bucket_name(bucket)?;
        Ok(Self {
            bucket: bucket.to_owned(),
            region: "us-east-1".into(),
            objects: Mutex::new(Objects::default()),
            events: None,
            sequencer: AtomicU64::new(0),
            versioning: false,
        })
    }

    /// Turns versioning on (S3 PutBucketVersioning `Enabled`): every write
    /// gets a new version ID and older versions are kept.
    pub fn with_versioning(mut self) -> Self {
        self.versioning = true;
        self
    }

    /// Publishes an S3 event notification into `sink` after every write and
    /// delete.
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = Some(sink);
        self
    }

    /// Sets the region named in event records (default `us-east-1`).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Stores an object assembled by a multipart upload: like
    /// [`Storage::put`], but the ETag is the given multipart ETag and the
    /// event is `ObjectCreated:CompleteMultipartUpload`. Used by the
    /// in-memory multipart store of `upload-multipart`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] for a create-only write over an existing key.
    pub async fn put_multipart_object(
        &self,
        key: &ObjectKey,
        body: Bytes,
        opts: PutOptions,
        etag: String,
    ) -> Result<ObjectMeta> {
        let (meta, seq) = self.store(key, body, opts, etag)?;
        self.emit(
            key,
            "ObjectCreated:CompleteMultipartUpload",
            Some(&meta),
            seq,
        )
        .await;
        Ok(meta)
    }

    /// Number of objects in the bucket (current versions; older versions
    /// and deleted keys do not count).
    pub fn len(&self) -> usize {
        self.lock().current.len()
    }

    /// Whether the bucket holds no object (current versions).
    pub fn is_empty(&self) -> bool {
        self.lock().current.is_empty()
    }

    /// The version IDs of `key`, oldest first, the current one last (empty
    /// without versioning, or when the key never existed).
    pub fn version_ids(&self, key: &ObjectKey) -> Vec<String> {
        let objects = self.lock();
        objects
            .noncurrent
            .get(key)
            .into_iter()
            .flatten()
            .chain(objects.current.get(key))
            .filter_map(|e| e.meta.version_id.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Objects> {
        // A panic while holding the lock cannot leave an entry half-written
        // (every mutation is a single insert or remove), so poisoning is
        // safe to ignore.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn not_found(&self, key: &ObjectKey) -> Error {
        Error::NotFound {
            bucket: self.bucket.clone(),
            key: key.to_string(),
        }
    }

    /// A copy of the entry, its metadata telling how many tags it has
    /// (as S3's GetObject does).
    fn entry(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<Entry> {
        let mut e = self
            .lock()
            .find(key, version_id)
            .cloned()
            .ok_or_else(|| self.not_found(key))?;
        e.meta.tag_count = Some(u32::try_from(e.tags.len()).unwrap_or(u32::MAX));
        Ok(e)
    }

    fn store(
        &self,
        key: &ObjectKey,
        body: Bytes,
        opts: PutOptions,
        etag: String,
    ) -> Result<(ObjectMeta, u64)> {
        let meta = ObjectMeta {
            key: key.clone(),
            size: body.len() as u64,
            etag,
            content_type: opts.content_type,
            cache_control: opts.cache_control,
            last_modified: SystemTime::now(),
            version_id: self
                .versioning
                .then(|| uuid::Uuid::new_v4().simple().to_string()),
            metadata: opts.metadata,
            tag_count: None,
        };
        let mut objects = self.lock();
        if opts.create_only && objects.current.contains_key(key) {
            return Err(Error::AlreadyExists {
                bucket: self.bucket.clone(),
                key: key.to_string(),
            });
        }
        if let Some(want) = &opts.if_match {
            match objects.current.get(key) {
                None => {
                    return Err(Error::NotFound {
                        bucket: self.bucket.clone(),
                        key: key.to_string(),
                    });
                }
                Some(e) if e.meta.etag != want.trim_matches('"') => {
                    return Err(Error::PreconditionFailed {
                        bucket: self.bucket.clone(),
                        key: key.to_string(),
                    });
                }
                Some(_) => {}
            }
        }
        if self.versioning {
            objects.retire(key);
        }
        objects.current.insert(
            key.clone(),
            Entry {
                body,
                meta: meta.clone(),
                tags: opts.tags,
            },
        );
        let seq = self.next_sequencer();
        drop(objects);
        Ok((meta, seq))
    }

    /// The next event sequencer; called with the objects lock held, so
    /// sequencers follow the order of the writes (as S3's do).
    fn next_sequencer(&self) -> u64 {
        self.sequencer.fetch_add(1, Ordering::SeqCst) + 1
    }

    async fn emit(&self, key: &ObjectKey, event_name: &str, meta: Option<&ObjectMeta>, seq: u64) {
        self.emit_version(
            key,
            event_name,
            meta,
            seq,
            meta.and_then(|m| m.version_id.clone()),
        )
        .await
    }

    async fn emit_version(
        &self,
        key: &ObjectKey,
        event_name: &str,
        meta: Option<&ObjectMeta>,
        seq: u64,
        version_id: Option<String>,
    ) {
        let Some(sink) = &self.events else { return };
        let mut record = S3EventRecord::new(
            &self.region,
            &self.bucket,
            key,
            event_name,
            meta.map(|m| m.size),
            meta.map(|m| m.etag.as_str()),
            &format!("{seq:016X}"),
        );
        record.s3.object.version_id = version_id;
        if let Err(e) = sink.publish(record.to_message()).await {
            tracing::warn!(bucket = %self.bucket, %key, event_name, error = %e, "event notification lost");
        }
    }
}

/// Checks a bucket name against the S3 naming rules.
///
/// # Errors
/// [`Error::InvalidBucketName`].
pub fn check_bucket_name(bucket: &str) -> Result<()> {
    let b = bucket.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !b.windows(2).any(|w| w == b"..");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidBucketName {
            bucket: bucket.chars().take(100).collect(),
        })
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(&self, key: &ObjectKey, body: Bytes, opts: PutOptions) -> Result<ObjectMeta> {
        let etag = etag_of(&body);
        let (meta, seq) = self.store(key, body, opts, etag)?;
        self.emit(key, "ObjectCreated:Put", Some(&meta), seq).await;
        Ok(meta)
    }

    async fn get_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<GetResult> {
        let e = self.entry(key, version_id)?;
        Ok(GetResult {
            meta: e.meta,
            body: e.body,
        })
    }

    async fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes> {
        let e = self.entry(key, None)?;
        let size = e.body.len() as u64;
        if range.start >= range.end || range.start >= size {
            return Err(Error::InvalidRange {
                key: key.to_string(),
                range,
                size,
            });
        }
        let end = range.end.min(size);
        // Both bounds are <= size, which came from a usize.
        Ok(e.body.slice(range.start as usize..end as usize))
    }

    async fn get_stream_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
    ) -> Result<(ObjectMeta, ByteStream)> {
        let e = self.entry(key, version_id)?;
        let body = e.body;
        let chunks = (0..body.len())
            .step_by(STREAM_CHUNK)
            .map(move |start| Ok(body.slice(start..(start + STREAM_CHUNK).min(body.len()))))
            .collect::<Vec<_>>();
        // An `unfold` stream, as the S3 body stream is: like it, it panics
        // when polled again after its end, so callers that would do that
        // to a real response fail here too.
        let stream = futures::stream::unfold(chunks.into_iter(), |mut rest| async move {
            rest.next().map(|chunk| (chunk, rest))
        });
        Ok((e.meta, stream.boxed()))
    }

    async fn head_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<ObjectMeta> {
        Ok(self.entry(key, version_id)?.meta)
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<ObjectMeta> {
        let src = self.entry(from, None)?;
        let opts = PutOptions {
            content_type: src.meta.content_type,
            cache_control: src.meta.cache_control,
            create_only: false,
            if_match: None,
            tags: src.tags,
            checksum: None,
            metadata: src.meta.metadata,
        };
        let (meta, seq) = self.store(to, src.body, opts, src.meta.etag)?;
        self.emit(to, "ObjectCreated:Copy", Some(&meta), seq).await;
        Ok(meta)
    }

    async fn delete_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<()> {
        let removed = {
            let mut objects = self.lock();
            let gone = match version_id {
                // Without versioning the object goes; with it, a delete
                // marker hides it and its versions stay.
                None if self.versioning => objects
                    .retire(key)
                    .map(|()| ("ObjectRemoved:DeleteMarkerCreated", None)),
                None => objects
                    .current
                    .remove(key)
                    .map(|_| ("ObjectRemoved:Delete", None)),
                Some(v) => {
                    let is_current = objects
                        .current
                        .get(key)
                        .is_some_and(|e| Objects::is_version(e, v));
                    if is_current {
                        // The previous version becomes current, as in S3.
                        objects.current.remove(key);
                        if let Some(older) = objects.noncurrent.get_mut(key)
                            && let Some(previous) = older.pop()
                        {
                            objects.current.insert(key.clone(), previous);
                        }
                        Some(("ObjectRemoved:Delete", Some(v.to_owned())))
                    } else {
                        objects.noncurrent.get_mut(key).and_then(|older| {
                            let at = older.iter().position(|e| Objects::is_version(e, v))?;
                            older.remove(at);
                            Some(("ObjectRemoved:Delete", Some(v.to_owned())))
                        })
                    }
                }
            };
            if objects.noncurrent.get(key).is_some_and(Vec::is_empty) {
                objects.noncurrent.remove(key);
            }
            gone.map(|(name, v)| (name, v, self.next_sequencer()))
        };
        if let Some((name, v, seq)) = removed {
            self.emit_version(key, name, None, seq, v).await;
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        Ok(self
            .lock()
            .current
            .values()
            .filter(|e| e.meta.key.as_str().starts_with(prefix))
            .map(|e| e.meta.clone())
            .collect())
    }

    async fn put_tags_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
        tags: &Tags,
    ) -> Result<()> {
        let mut objects = self.lock();
        let e = objects
            .find_mut(key, version_id)
            .ok_or_else(|| self.not_found(key))?;
        e.tags = tags.clone();
        Ok(())
    }

    async fn get_tags_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<Tags> {
        Ok(self.entry(key, version_id)?.tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventMessage, parse_event_message};

    #[derive(Debug, Default)]
    struct Collect(Mutex<Vec<String>>);

    #[async_trait]
    impl EventSink for Collect {
        async fn publish(&self, body: String) -> Result<()> {
            self.0.lock().unwrap().push(body);
            Ok(())
        }
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.v2", "a1b"] {
            assert!(MemoryStorage::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Upper",
            "-abc",
            "abc-",
            "a..b",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(
                    MemoryStorage::new(bad),
                    Err(Error::InvalidBucketName { .. })
                ),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn emits_s3_events() {
        let sink = Arc::new(Collect::default());
        let s = MemoryStorage::new("uploads")
            .unwrap()
            .with_events(sink.clone());
        let k = ObjectKey::new("uploads/a b.jpg").unwrap();
        let k2 = ObjectKey::new("copy.jpg").unwrap();
        s.put(&k, Bytes::from_static(b"hello"), PutOptions::default())
            .await
            .unwrap();
        s.copy(&k, &k2).await.unwrap();
        s.delete(&k).await.unwrap();
        s.delete(&k).await.unwrap(); // missing: no second event
        let msgs = sink.0.lock().unwrap().clone();
        assert_eq!(msgs.len(), 3);
        let recs: Vec<S3EventRecord> = msgs
            .iter()
            .map(|m| match parse_event_message(m).unwrap() {
                EventMessage::Records(mut r) => r.remove(0),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(recs[0].event_name, "ObjectCreated:Put");
        assert_eq!(recs[0].key().unwrap(), k);
        assert_eq!(recs[0].s3.object.size, Some(5));
        assert_eq!(
            recs[0].s3.object.e_tag.as_deref(),
            Some("5d41402abc4b2a76b9719d911017c592")
        );
        assert_eq!(recs[1].event_name, "ObjectCreated:Copy");
        assert_eq!(recs[1].key().unwrap(), k2);
        assert_eq!(recs[2].event_name, "ObjectRemoved:Delete");
        assert_eq!(recs[2].s3.object.size, None);
        let seqs: Vec<_> = recs
            .iter()
            .map(|r| r.s3.object.sequencer.clone().unwrap())
            .collect();
        assert!(seqs[0] < seqs[1] && seqs[1] < seqs[2], "{seqs:?}");
    }
}
