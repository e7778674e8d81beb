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
#[derive(Debug)]
pub struct MemoryStorage {
    bucket: String,
    region: String,
    objects: Mutex<BTreeMap<ObjectKey, Entry>>,
    events: Option<Arc<dyn EventSink>>,
    sequencer: AtomicU64,
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
            objects: Mutex::new(BTreeMap::new()),
            events: None,
            sequencer: AtomicU64::new(0),
        })
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

    /// Number of objects in the bucket.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the bucket holds no object.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<ObjectKey, Entry>> {
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

    fn entry(&self, key: &ObjectKey) -> Result<Entry> {
        self.lock()
            .get(key)
            .cloned()
            .ok_or_else(|| self.not_found(key))
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
        };
        let mut objects = self.lock();
        if opts.create_only && objects.contains_key(key) {
            return Err(Error::AlreadyExists {
                bucket: self.bucket.clone(),
                key: key.to_string(),
            });
        }
        if let Some(want) = &opts.if_match {
            match objects.get(key) {
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
        objects.insert(
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
        let Some(sink) = &self.events else { return };
        let record = S3EventRecord::new(
            &self.region,
            &self.bucket,
            key,
            event_name,
            meta.map(|m| m.size),
            meta.map(|m| m.etag.as_str()),
            &format!("{seq:016X}"),
        );
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
        && !bucket.contains("..");
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

    async fn get(&self, key: &ObjectKey) -> Result<GetResult> {
        let e = self.entry(key)?;
        Ok(GetResult {
            meta: e.meta,
            body: e.body,
        })
    }

    async fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes> {
        let e = self.entry(key)?;
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

    async fn get_stream(&self, key: &ObjectKey) -> Result<(ObjectMeta, ByteStream)> {
        let e = self.entry(key)?;
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

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        Ok(self.entry(key)?.meta)
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<ObjectMeta> {
        let src = self.entry(from)?;
        let opts = PutOptions {
            content_type: src.meta.content_type,
            cache_control: src.meta.cache_control,
            create_only: false,
            if_match: None,
            tags: src.tags,
            checksum: None,
        };
        let (meta, seq) = self.store(to, src.body, opts, src.meta.etag)?;
        self.emit(to, "ObjectCreated:Copy", Some(&meta), seq).await;
        Ok(meta)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        let removed = {
            let mut objects = self.lock();
            objects.remove(key).is_some().then(|| self.next_sequencer())
        };
        if let Some(seq) = removed {
            self.emit(key, "ObjectRemoved:Delete", None, seq).await;
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        Ok(self
            .lock()
            .values()
            .filter(|e| e.meta.key.as_str().starts_with(prefix))
            .map(|e| e.meta.clone())
            .collect())
    }

    async fn put_tags(&self, key: &ObjectKey, tags: &Tags) -> Result<()> {
        let mut objects = self.lock();
        let e = objects.get_mut(key).ok_or_else(|| self.not_found(key))?;
        e.tags = tags.clone();
        Ok(())
    }

    async fn get_tags(&self, key: &ObjectKey) -> Result<Tags> {
        Ok(self.entry(key)?.tags)
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
