//! [`EventPublishingStorage`]: S3's bucket notifications for a store that
//! has none (local disk), sent into the local mode's queue.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use upload_core::event::{EventSink, S3EventRecord};
use upload_core::storage::{ByteStream, GetResult, ObjectMeta, PutOptions, Storage, Tags};
use upload_core::{
    CompletedPart, MultipartStore, MultipartUploadInfo, ObjectKey, PartChecksum, Result,
    UploadedPart,
};

/// A [`Storage`] and [`MultipartStore`] that delegates every call to
/// `inner` and, after a write that succeeded, publishes the S3 event
/// notification S3 would send (one record per message, the JSON the
/// worker parses from SQS: [`S3EventRecord::to_message`]) to `sink`:
///
/// | call | event |
/// |---|---|
/// | [`Storage::put`] | `ObjectCreated:Put` |
/// | [`Storage::copy`] | `ObjectCreated:Copy` (of the new key) |
/// | [`MultipartStore::complete_multipart_upload`] (and `_create_only`) | `ObjectCreated:CompleteMultipartUpload` |
/// | [`Storage::delete`] / [`Storage::delete_version`] | `ObjectRemoved:Delete` |
///
/// The record carries the bucket, the URL-encoded key, the size, the
/// ETag, the version ID when the store keeps versions, and a sequencer
/// (16 uppercase hex digits) that grows with every event of this process
/// and from one process to the next (it starts at the clock's nanoseconds).
///
/// **At most once per write, at least once overall.** A write is not
/// undone when its event cannot be sent (S3 does not undo it either): the
/// failure is logged, and the local mode's start-up reconciliation
/// ([`crate::reconcile()`]) sends an event for every original that has no
/// manifest, which also covers a crash between the write and the send.
#[derive(Debug)]
pub struct EventPublishingStorage<S> {
    inner: Arc<S>,
    sink: Arc<dyn EventSink>,
    region: String,
    sequencer: AtomicU64,
}

impl<S> EventPublishingStorage<S> {
    /// Publishes the events of `inner`'s writes to `sink`, with
    /// `awsRegion` set to `region`.
    pub fn new(inner: Arc<S>, sink: Arc<dyn EventSink>, region: impl Into<String>) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self {
            inner,
            sink,
            region: region.into(),
            sequencer: AtomicU64::new(now),
        }
    }

    /// The store written through.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// Sends one event; a failure is logged, not returned (the write has
    /// happened).
    async fn emit(
        &self,
        bucket: &str,
        key: &ObjectKey,
        event_name: &str,
        meta: Option<&ObjectMeta>,
    ) {
        let seq = self.sequencer.fetch_add(1, Ordering::SeqCst) + 1;
        let mut record = S3EventRecord::new(
            &self.region,
            bucket,
            key,
            event_name,
            meta.map(|m| m.size),
            meta.map(|m| m.etag.as_str()),
            &format!("{seq:016X}"),
        );
        record.s3.object.version_id = meta.and_then(|m| m.version_id.clone());
        match self.sink.publish(record.to_message()).await {
            Ok(()) => tracing::debug!(bucket, %key, event_name, "event sent"),
            Err(e) => {
                tracing::error!(bucket, %key, event_name, error = %e, "event not sent: the next start's reconciliation sends it")
            }
        }
    }
}

#[async_trait]
impl<S> Storage for EventPublishingStorage<S>
where
    S: Storage + MultipartStore + 'static,
{
    fn bucket(&self) -> &str {
        Storage::bucket(self.inner.as_ref())
    }

    async fn put(&self, key: &ObjectKey, body: Bytes, opts: PutOptions) -> Result<ObjectMeta> {
        let meta = self.inner.put(key, body, opts).await?;
        self.emit(Storage::bucket(self), key, "ObjectCreated:Put", Some(&meta))
            .await;
        Ok(meta)
    }

    async fn get_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<GetResult> {
        self.inner.get_version(key, version_id).await
    }

    async fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes> {
        self.inner.get_range(key, range).await
    }

    async fn get_stream_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
    ) -> Result<(ObjectMeta, ByteStream)> {
        self.inner.get_stream_version(key, version_id).await
    }

    async fn head_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<ObjectMeta> {
        self.inner.head_version(key, version_id).await
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<ObjectMeta> {
        let meta = self.inner.copy(from, to).await?;
        self.emit(Storage::bucket(self), to, "ObjectCreated:Copy", Some(&meta))
            .await;
        Ok(meta)
    }

    async fn delete_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<()> {
        self.inner.delete_version(key, version_id).await?;
        self.emit(Storage::bucket(self), key, "ObjectRemoved:Delete", None)
            .await;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }

    async fn put_tags_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
        tags: &Tags,
    ) -> Result<()> {
        self.inner.put_tags_version(key, version_id, tags).await
    }

    async fn get_tags_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<Tags> {
        self.inner.get_tags_version(key, version_id).await
    }
}

impl<S> EventPublishingStorage<S>
where
    S: Storage + MultipartStore + 'static,
{
    /// Sends `ObjectCreated:CompleteMultipartUpload` for a completed
    /// upload (either completion) and hands its object back.
    async fn completed(&self, key: &ObjectKey, meta: ObjectMeta) -> ObjectMeta {
        self.emit(
            MultipartStore::bucket(self),
            key,
            "ObjectCreated:CompleteMultipartUpload",
            Some(&meta),
        )
        .await;
        meta
    }
}

#[async_trait]
impl<S> MultipartStore for EventPublishingStorage<S>
where
    S: Storage + MultipartStore + 'static,
{
    fn bucket(&self) -> &str {
        MultipartStore::bucket(self.inner.as_ref())
    }

    async fn create_multipart_upload(&self, key: &ObjectKey, opts: PutOptions) -> Result<String> {
        self.inner.create_multipart_upload(key, opts).await
    }

    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<UploadedPart> {
        self.inner
            .upload_part(key, upload_id, part_number, body)
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
        self.inner
            .upload_part_checked(key, upload_id, part_number, body, checksum)
            .await
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<UploadedPart>> {
        self.inner.list_parts(key, upload_id).await
    }

    async fn complete_multipart_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectMeta> {
        let meta = self
            .inner
            .complete_multipart_upload(key, upload_id, parts)
            .await?;
        Ok(self.completed(key, meta).await)
    }

    async fn complete_multipart_upload_create_only(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectMeta> {
        let meta = self
            .inner
            .complete_multipart_upload_create_only(key, upload_id, parts)
            .await?;
        Ok(self.completed(key, meta).await)
    }

    async fn abort_multipart_upload(&self, key: &ObjectKey, upload_id: &str) -> Result<()> {
        self.inner.abort_multipart_upload(key, upload_id).await
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<MultipartUploadInfo>> {
        self.inner.list_multipart_uploads(prefix).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use upload_core::event::{EventMessage, parse_event_message};
    use upload_object_store::ObjectStoreStorage;

    use super::*;

    #[derive(Debug, Default)]
    struct Collect(Mutex<Vec<String>>);

    #[async_trait]
    impl EventSink for Collect {
        async fn publish(&self, body: String) -> Result<()> {
            self.0.lock().unwrap().push(body);
            Ok(())
        }
    }

    fn records(sink: &Collect) -> Vec<S3EventRecord> {
        sink.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| match parse_event_message(b).unwrap() {
                EventMessage::Records(r) => r,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn put_and_complete_send_the_s3_events_and_failures_send_none() {
        let sink = Arc::new(Collect::default());
        let s = EventPublishingStorage::new(
            Arc::new(ObjectStoreStorage::in_memory("uploads").unwrap()),
            sink.clone(),
            "us-east-1",
        );
        let k = ObjectKey::new("uploads/alice/my photo+1.jpg").unwrap();
        let meta = s
            .put(
                &k,
                Bytes::from_static(b"abc"),
                PutOptions::default().with_create_only(true),
            )
            .await
            .unwrap();
        // A refused write sends nothing.
        s.put(
            &k,
            Bytes::from_static(b"x"),
            PutOptions::default().with_create_only(true),
        )
        .await
        .unwrap_err();
        let big = ObjectKey::new("uploads/alice/big.pdf").unwrap();
        let id = s
            .create_multipart_upload(&big, PutOptions::default())
            .await
            .unwrap();
        let p1 = s
            .upload_part(&big, &id, 1, Bytes::from(vec![1u8; 5 << 20]))
            .await
            .unwrap();
        let p2 = s
            .upload_part(&big, &id, 2, Bytes::from_static(b"end"))
            .await
            .unwrap();
        assert!(records(&sink).len() == 1, "parts send nothing");
        let done = s
            .complete_multipart_upload_create_only(
                &big,
                &id,
                &[CompletedPart::from(&p1), CompletedPart::from(&p2)],
            )
            .await
            .unwrap();
        let got = records(&sink);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].event_name, "ObjectCreated:Put");
        assert_eq!(got[0].s3.bucket.name, "uploads");
        assert_eq!(got[0].s3.object.key, "uploads/alice/my+photo%2B1.jpg");
        assert_eq!(got[0].key().unwrap(), k);
        assert_eq!(got[0].s3.object.size, Some(3));
        assert_eq!(got[0].s3.object.e_tag.as_deref(), Some(meta.etag.as_str()));
        assert_eq!(got[1].event_name, "ObjectCreated:CompleteMultipartUpload");
        assert_eq!(got[1].s3.object.size, Some((5 << 20) + 3));
        assert_eq!(got[1].s3.object.e_tag.as_deref(), Some(done.etag.as_str()));
        assert!(done.etag.ends_with("-2"));
        let (a, b) = (
            got[0].s3.object.sequencer.clone().unwrap(),
            got[1].s3.object.sequencer.clone().unwrap(),
        );
        assert_eq!(a.len(), 16);
        assert_eq!(
            upload_core::event::sequencer_cmp(&a, &b),
            std::cmp::Ordering::Less
        );
        // A later process's sequencers are later still.
        let later = EventPublishingStorage::new(s.inner().clone(), sink.clone(), "us-east-1");
        later
            .put(
                &ObjectKey::new("uploads/alice/c.jpg").unwrap(),
                Bytes::from_static(b"c"),
                PutOptions::default(),
            )
            .await
            .unwrap();
        let c = records(&sink)[2].s3.object.sequencer.clone().unwrap();
        assert_eq!(
            upload_core::event::sequencer_cmp(&b, &c),
            std::cmp::Ordering::Less
        );
    }
}
