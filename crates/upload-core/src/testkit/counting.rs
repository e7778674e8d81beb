//! [`CountingStorage`]: a [`Storage`] wrapper that counts requests, for
//! tests and benchmarks that check how many calls a component makes
//! (e.g. "one GET of the original, 0 writes on redelivery").

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::key::ObjectKey;
use crate::storage::{ByteStream, GetResult, ObjectMeta, PutOptions, Storage, Tags};

/// Requests made through a [`CountingStorage`], by operation. `get` counts
/// `get`, `get_range` and `get_stream` alike (each is one S3 GetObject).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestCounts {
    /// GetObject requests (whole, ranged or streamed).
    pub get: u64,
    /// HeadObject requests.
    pub head: u64,
    /// PutObject requests, refused ones included.
    pub put: u64,
    /// CopyObject requests.
    pub copy: u64,
    /// DeleteObject requests.
    pub delete: u64,
    /// ListObjectsV2 calls (all pages of one call count once).
    pub list: u64,
    /// PutObjectTagging requests.
    pub put_tags: u64,
    /// GetObjectTagging requests.
    pub get_tags: u64,
    /// Successful PutObject and CopyObject writes, per destination key.
    pub writes_by_key: BTreeMap<String, u64>,
    /// GetObject requests per key.
    pub gets_by_key: BTreeMap<String, u64>,
}

impl RequestCounts {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.get
            + self.head
            + self.put
            + self.copy
            + self.delete
            + self.list
            + self.put_tags
            + self.get_tags
    }

    /// Successful writes (PutObject, CopyObject) of every key.
    pub fn writes(&self) -> u64 {
        self.writes_by_key.values().sum()
    }

    /// Requests that change the bucket: puts, copies, deletes and tag
    /// writes, refused ones included.
    pub fn mutations(&self) -> u64 {
        self.put + self.copy + self.delete + self.put_tags
    }
}

/// Wraps a [`Storage`] and counts every request made through it.
#[derive(Debug, Clone)]
pub struct CountingStorage {
    inner: Arc<dyn Storage>,
    counts: Arc<Mutex<RequestCounts>>,
}

impl CountingStorage {
    /// Counts the requests made to `inner`.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> RequestCounts {
        self.lock().clone()
    }

    /// Sets every count back to zero.
    pub fn reset(&self) {
        *self.lock() = RequestCounts::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RequestCounts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut RequestCounts)) {
        f(&mut self.lock());
    }

    fn got(&self, key: &ObjectKey) {
        self.count(|c| {
            c.get += 1;
            *c.gets_by_key.entry(key.as_str().to_owned()).or_default() += 1;
        });
    }

    fn wrote(&self, key: &ObjectKey) {
        self.count(|c| *c.writes_by_key.entry(key.as_str().to_owned()).or_default() += 1);
    }
}

#[async_trait]
impl Storage for CountingStorage {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    async fn put(&self, key: &ObjectKey, body: Bytes, opts: PutOptions) -> Result<ObjectMeta> {
        self.count(|c| c.put += 1);
        let meta = self.inner.put(key, body, opts).await?;
        self.wrote(key);
        Ok(meta)
    }

    async fn get_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<GetResult> {
        self.got(key);
        self.inner.get_version(key, version_id).await
    }

    async fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes> {
        self.got(key);
        self.inner.get_range(key, range).await
    }

    async fn get_stream_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
    ) -> Result<(ObjectMeta, ByteStream)> {
        self.got(key);
        self.inner.get_stream_version(key, version_id).await
    }

    async fn head_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<ObjectMeta> {
        self.count(|c| c.head += 1);
        self.inner.head_version(key, version_id).await
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<ObjectMeta> {
        self.count(|c| c.copy += 1);
        let meta = self.inner.copy(from, to).await?;
        self.wrote(to);
        Ok(meta)
    }

    async fn delete_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<()> {
        self.count(|c| c.delete += 1);
        self.inner.delete_version(key, version_id).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.count(|c| c.list += 1);
        self.inner.list(prefix).await
    }

    async fn put_tags_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
        tags: &Tags,
    ) -> Result<()> {
        self.count(|c| c.put_tags += 1);
        self.inner.put_tags_version(key, version_id, tags).await
    }

    async fn get_tags_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<Tags> {
        self.count(|c| c.get_tags += 1);
        self.inner.get_tags_version(key, version_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;

    #[tokio::test]
    async fn counts_each_request_and_successful_writes_per_key() {
        let s = CountingStorage::new(Arc::new(MemoryStorage::new("counted").unwrap()));
        let k = ObjectKey::new("a/b.txt").unwrap();
        let once = PutOptions::default().with_create_only(true);
        s.put(&k, Bytes::from_static(b"x"), once.clone())
            .await
            .unwrap();
        assert!(s.put(&k, Bytes::from_static(b"y"), once).await.is_err());
        s.get(&k).await.unwrap();
        s.get_range(&k, 0..1).await.unwrap();
        s.head(&k).await.unwrap();
        s.delete(&k).await.unwrap();
        let c = s.counts();
        assert_eq!((c.put, c.get, c.head, c.delete), (2, 2, 1, 1));
        assert_eq!(
            c.writes_by_key.get("a/b.txt"),
            Some(&1),
            "the refused put wrote nothing"
        );
        assert_eq!(c.gets_by_key.get("a/b.txt"), Some(&2));
        assert_eq!((c.total(), c.writes(), c.mutations()), (6, 1, 3));
        s.reset();
        assert_eq!(s.counts(), RequestCounts::default());
    }
}
