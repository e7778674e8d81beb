//! [`ObjectStoreStorage`]: the [`Storage`] trait over any `ObjectStore`.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutMode, PutPayload, UpdateVersion,
};
use upload_core::sign::{PutToSign, SignError, SignedUpload, SignerCapabilities, UploadSigner};
use upload_core::storage::{ByteStream, GetResult, ObjectMeta, PutOptions, Storage, Tags, etag_of};
use upload_core::{Error, ObjectKey, Result};

use crate::capabilities::Capabilities;
use crate::error::{BuildError, map};
use crate::sidecar::{SIDECAR_VERSION, Sidecar, tag_map};

/// The prefix under which the adapter keeps its own objects (sidecars,
/// multipart parts, If-Match locks). Keys under it are refused with
/// [`Error::InvalidKey`] and never listed.
pub const RESERVED_PREFIX: &str = ".upload-sdk/";

/// Largest chunk of [`Storage::get_stream`]: 64 KiB (a backend's larger
/// chunks, such as `InMemory`'s single one, are split).
pub const STREAM_CHUNK: usize = 64 * 1024;

/// An If-Match lock older than this is taken to be left by a crashed
/// writer and broken (stores without `PutMode::Update` only).
const LOCK_STALE: Duration = Duration::from_secs(30);

/// One bucket (an Azure container, a directory, a memory store) of any
/// `object_store` backend, as the SDK's [`Storage`] and
/// [`MultipartStore`](upload_core::MultipartStore).
///
/// **Sidecars.** Each object `k` written through the adapter gets a JSON
/// sidecar at `.upload-sdk/meta/{k}.json` holding its S3 ETag (hex MD5,
/// or `{md5}-{n}` after multipart), content type, cache control, user
/// metadata and tags, and the *backend* ETag of the object it describes.
/// Reads use a sidecar only while the object still has that backend ETag
/// and size; otherwise (an object written by someone else, or rewritten
/// since) the object reads with the backend's ETag, the content type and
/// cache control the backend kept natively ([`Capabilities::attributes`]),
/// and **no tags**. So the scan verdict (`scan-status` tag) works on
/// backends without readable tags, and bytes replaced after a scan are
/// never taken for scanned ones.
///
/// **Writes.** Create-only writes are `PutMode::Create`. If-Match writes
/// compare the S3 ETag, then write with `PutMode::Update` on the backend
/// ETag just read, so a concurrent replacement fails the write
/// ([`Error::PreconditionFailed`]). A backend without `PutMode::Update`
/// (`LocalFileSystem`) takes a create-only lock object
/// `.upload-sdk/locks/{k}` for the compare and write instead; this
/// excludes other If-Match writers through the adapter, not plain
/// overwrites, and a lock older than 30 s is broken.
///
/// **Limits.** Keys must be `object_store` paths: no empty segment
/// (`a//b`), no leading or trailing `/`, no `.` or `..` segment
/// ([`Error::InvalidKey`]); on `LocalFileSystem` a key cannot also be a
/// "directory" of another (`a` and `a/b`). Versions are not kept: a
/// version ID other than `"null"` (S3's name for an unversioned object)
/// is [`Error::NotFound`]. Concurrent plain writers of one key can leave
/// the newest object without its sidecar: it then reads untagged (fail
/// closed) with only its native metadata.
#[derive(Clone)]
pub struct ObjectStoreStorage {
    bucket: String,
    store: Arc<dyn ObjectStore>,
    caps: Capabilities,
    /// Signs upload URLs (Azure SAS), when the backend can.
    #[cfg(feature = "azure")]
    signer: Option<Arc<dyn object_store::signer::Signer>>,
    /// Headers a client must send with a signed PUT (Azure:
    /// `x-ms-blob-type: BlockBlob`).
    put_headers: &'static [(&'static str, &'static str)],
}

impl std::fmt::Debug for ObjectStoreStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreStorage")
            .field("bucket", &self.bucket)
            .field("store", &self.store.to_string())
            .field("caps", &self.caps)
            .finish()
    }
}

impl ObjectStoreStorage {
    /// The adapter over `store`, named `bucket` in events and errors, with
    /// what the backend keeps natively.
    ///
    /// # Errors
    /// [`BuildError::InvalidBucketName`] when `bucket` breaks S3's bucket
    /// naming rules (3..=63 lowercase letters, digits, `-`, `.`).
    pub fn new(
        bucket: &str,
        store: Arc<dyn ObjectStore>,
        caps: Capabilities,
    ) -> Result<Self, BuildError> {
        upload_core::storage::check_bucket_name(bucket)?;
        Ok(Self {
            bucket: bucket.to_owned(),
            store,
            caps,
            #[cfg(feature = "azure")]
            signer: None,
            put_headers: &[],
        })
    }

    /// A fresh, empty `InMemory` store.
    ///
    /// # Errors
    /// As [`ObjectStoreStorage::new`].
    pub fn in_memory(bucket: &str) -> Result<Self, BuildError> {
        Self::new(
            bucket,
            Arc::new(object_store::memory::InMemory::new()),
            Capabilities::IN_MEMORY,
        )
    }

    /// Files under `dir` (created when missing), one file per object, the
    /// sidecars under `dir/.upload-sdk/`.
    ///
    /// # Errors
    /// As [`ObjectStoreStorage::new`]; [`BuildError::Directory`] when the
    /// directory cannot be created; [`BuildError::Backend`] when
    /// `object_store` refuses it.
    pub fn local(bucket: &str, dir: impl AsRef<std::path::Path>) -> Result<Self, BuildError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| BuildError::Directory {
            path: dir.to_owned(),
            source,
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)?;
        Self::new(bucket, Arc::new(fs), Capabilities::LOCAL_FILE_SYSTEM)
    }

    /// An Azure Blob Storage container (or Azurite's) built with
    /// [`object_store::azure::MicrosoftAzureBuilder`]; `container` names it
    /// in events and errors.
    ///
    /// # Errors
    /// As [`ObjectStoreStorage::new`].
    #[cfg(feature = "azure")]
    pub fn azure(
        container: &str,
        azure: object_store::azure::MicrosoftAzure,
    ) -> Result<Self, BuildError> {
        let azure = Arc::new(azure);
        let mut s = Self::new(container, azure.clone(), Capabilities::AZURE)?;
        s.signer = Some(azure);
        s.put_headers = &[("x-ms-blob-type", "BlockBlob")];
        Ok(s)
    }

    /// A URL a client PUTs one object's bytes to, straight to the store,
    /// valid for `expires_in` (Azure: a service SAS with write permission
    /// on that blob only, from `object_store`'s `Signer`). Send exactly
    /// [`SignedUpload::headers`] with it.
    ///
    /// Unlike an S3 presigned PUT, a SAS signs neither `Content-Type` nor
    /// `Content-Length` nor `If-None-Match: *`: the store does not hold a
    /// client to the declared type or size, and the URL can overwrite
    /// until it expires. The worker's checks (magic bytes, size, scan)
    /// still decide, and bytes replaced after the scan read untagged
    /// (see [`ObjectStoreStorage`]), so they are never taken for scanned
    /// ones; keep `expires_in` short.
    ///
    /// # Errors
    /// [`Error::ExpiryOutOfRange`] outside 1 s..=7 days or not whole
    /// seconds; [`Error::InvalidKey`] as for every key; [`Error::S3`] with
    /// code `NotImplemented` when the backend cannot sign (local disk,
    /// memory); [`Error::Unavailable`] when signing fails (e.g. a
    /// credential that cannot sign).
    pub async fn sign_upload(
        &self,
        key: &ObjectKey,
        content_type: &str,
        expires_in: Duration,
    ) -> Result<SignedUpload> {
        if expires_in.subsec_nanos() != 0 || !(1..=7 * 24 * 3600).contains(&expires_in.as_secs()) {
            return Err(Error::ExpiryOutOfRange { expiry: expires_in });
        }
        let path = self.path(key)?;
        let now = SystemTime::now();
        let Some(url) = self.signed_put_url(key, &path, expires_in).await else {
            return Err(Error::S3 {
                operation: "PutObject",
                code: "NotImplemented".to_owned(),
                status: 501,
                message: format!(
                    "{}: the backend {} cannot sign upload URLs",
                    self.bucket, self.store
                ),
            });
        };
        let url = url?;
        let mut headers: Vec<(String, String)> = self
            .put_headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        headers.push(("content-type".to_owned(), content_type.to_owned()));
        headers.sort();
        Ok(SignedUpload {
            method: "PUT",
            url,
            headers,
            expires_at: now + expires_in,
        })
    }

    /// The store underneath (for signing URLs, or reading what the adapter
    /// wrote).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// What the backend keeps natively.
    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// A signed PUT URL of `path`; `None` when the backend cannot sign.
    #[cfg(feature = "azure")]
    async fn signed_put_url(
        &self,
        key: &ObjectKey,
        path: &Path,
        expires_in: Duration,
    ) -> Option<Result<String>> {
        let signer = self.signer.as_ref()?;
        Some(
            signer
                .signed_url(object_store::signer::Method::PUT, path, expires_in)
                .await
                .map(|u| u.to_string())
                .map_err(|e| self.err(key.as_str(), "PutObject", e)),
        )
    }

    /// Without a cloud backend compiled in, nothing can sign.
    #[cfg(not(feature = "azure"))]
    async fn signed_put_url(
        &self,
        _key: &ObjectKey,
        _path: &Path,
        _expires_in: Duration,
    ) -> Option<Result<String>> {
        None
    }

    pub(crate) fn err(&self, key: &str, op: &'static str, e: object_store::Error) -> Error {
        map(&self.bucket, key, op, e)
    }

    pub(crate) fn not_found(&self, key: &ObjectKey) -> Error {
        Error::NotFound {
            bucket: self.bucket.clone(),
            key: key.to_string(),
        }
    }

    /// The `object_store` path of a key.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a key under [`RESERVED_PREFIX`] or one
    /// that is no `object_store` path.
    pub(crate) fn path(&self, key: &ObjectKey) -> Result<Path> {
        let k = key.as_str();
        let bad = |reason| Error::InvalidKey {
            key: k.chars().take(200).collect(),
            reason,
        };
        if k.starts_with(RESERVED_PREFIX) {
            return Err(bad("keys under .upload-sdk/ are reserved for the adapter"));
        }
        if k.starts_with('/') || k.ends_with('/') || k.contains("//") {
            return Err(bad(
                "object_store paths have no empty segment, leading or trailing /",
            ));
        }
        Path::parse(k).map_err(|_| {
            bad("not an object_store path (a . or .. segment, or a control character)")
        })
    }

    fn sidecar_path(path: &Path) -> Path {
        Path::from(format!("{RESERVED_PREFIX}meta/{path}.json"))
    }

    fn lock_path(path: &Path) -> Path {
        Path::from(format!("{RESERVED_PREFIX}locks/{path}"))
    }

    /// The native attributes of `opts` that the backend keeps.
    pub(crate) fn attributes(&self, opts: &PutOptions) -> Attributes {
        let mut a = Attributes::new();
        if self.caps.attributes {
            if let Some(ct) = &opts.content_type {
                a.insert(Attribute::ContentType, AttributeValue::from(ct.clone()));
            }
            if let Some(cc) = &opts.cache_control {
                a.insert(Attribute::CacheControl, AttributeValue::from(cc.clone()));
            }
        }
        if self.caps.user_metadata {
            for (k, v) in &opts.metadata {
                a.insert(
                    Attribute::Metadata(k.clone().into()),
                    AttributeValue::from(v.clone()),
                );
            }
        }
        a
    }

    /// Reads the sidecar of `path`; `None` when there is none or it is
    /// unreadable.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store cannot be reached.
    pub(crate) async fn read_sidecar(&self, path: &Path) -> Result<Option<Sidecar>> {
        match self.store.get(&Self::sidecar_path(path)).await {
            Ok(r) => {
                let body = r
                    .bytes()
                    .await
                    .map_err(|e| self.err(path.as_ref(), "GetObject", e))?;
                Ok(serde_json::from_slice::<Sidecar>(&body)
                    .ok()
                    .filter(|s| s.v == SIDECAR_VERSION))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(path.as_ref(), "GetObject", e)),
        }
    }

    pub(crate) async fn write_sidecar(&self, path: &Path, s: &Sidecar) -> Result<()> {
        let body = serde_json::to_vec(s).map_err(|e| Error::Unavailable {
            reason: format!("sidecar of {path}: {e}"),
        })?;
        self.store
            .put(&Self::sidecar_path(path), PutPayload::from(body))
            .await
            .map_err(|e| self.err(path.as_ref(), "PutObject", e))?;
        Ok(())
    }

    /// The SDK's metadata of a data object: from its sidecar when the
    /// sidecar describes it, else from the backend alone (no tags).
    /// Returns the tag set too.
    pub(crate) fn describe(
        &self,
        key: &ObjectKey,
        m: &object_store::ObjectMeta,
        attrs: &Attributes,
        sidecar: Option<&Sidecar>,
    ) -> (ObjectMeta, Tags) {
        let attr = |a: &Attribute| attrs.get(a).map(|v| v.to_string());
        let mut meta = ObjectMeta {
            key: key.clone(),
            size: m.size,
            etag: m
                .e_tag
                .as_deref()
                .unwrap_or("")
                .trim_matches('"')
                .to_owned(),
            content_type: attr(&Attribute::ContentType),
            cache_control: attr(&Attribute::CacheControl),
            last_modified: SystemTime::from(m.last_modified),
            version_id: m.version.clone(),
            metadata: attrs
                .iter()
                .filter_map(|(k, v)| match k {
                    Attribute::Metadata(n) => Some((n.to_ascii_lowercase(), v.to_string())),
                    _ => None,
                })
                .collect(),
            tag_count: Some(0),
        };
        let Some(s) = sidecar.filter(|s| s.describes(m)) else {
            return (meta, Tags::new());
        };
        let tags = s.tag_set();
        meta.etag = s.etag.clone();
        meta.content_type = s.content_type.clone().or(meta.content_type);
        meta.cache_control = s.cache_control.clone().or(meta.cache_control);
        meta.metadata = s.metadata.clone();
        meta.tag_count = Some(u32::try_from(tags.len()).unwrap_or(u32::MAX));
        (meta, tags)
    }

    /// Whether `version_id` names the object `m` (`None` and `"null"` for
    /// an unversioned one).
    fn is_version(m: &object_store::ObjectMeta, version_id: Option<&str>) -> bool {
        match version_id {
            None => true,
            Some(v) => m.version.as_deref().unwrap_or("null") == v,
        }
    }

    fn version_opts(version_id: Option<&str>) -> Option<String> {
        version_id.filter(|v| *v != "null").map(str::to_owned)
    }

    /// HEAD of the data object and its sidecar: backend metadata, native
    /// attributes, sidecar.
    pub(crate) async fn head_raw(
        &self,
        key: &ObjectKey,
        path: &Path,
        version_id: Option<&str>,
    ) -> Result<(object_store::ObjectMeta, Attributes, Option<Sidecar>)> {
        let opts = GetOptions {
            head: true,
            version: Self::version_opts(version_id),
            ..GetOptions::default()
        };
        let r = self
            .store
            .get_opts(path, opts)
            .await
            .map_err(|e| self.err(key.as_str(), "HeadObject", e))?;
        if !Self::is_version(&r.meta, version_id) {
            return Err(self.not_found(key));
        }
        let sidecar = self.read_sidecar(path).await?;
        Ok((r.meta, r.attributes, sidecar))
    }

    /// The sidecar of a new object written from `opts`.
    pub(crate) fn new_sidecar(
        backend_etag: Option<String>,
        size: u64,
        etag: String,
        opts: &PutOptions,
    ) -> Option<Sidecar> {
        Some(Sidecar {
            v: SIDECAR_VERSION,
            backend_etag: backend_etag?,
            size,
            etag,
            content_type: opts.content_type.clone(),
            cache_control: opts.cache_control.clone(),
            metadata: opts.metadata.clone(),
            tags: tag_map(&opts.tags),
        })
    }

    async fn put_if_match(
        &self,
        key: &ObjectKey,
        path: &Path,
        body: Bytes,
        opts: &PutOptions,
        want: &str,
    ) -> Result<object_store::PutResult> {
        let want = want.trim_matches('"');
        let precondition = || Error::PreconditionFailed {
            bucket: self.bucket.clone(),
            key: key.to_string(),
        };
        let attributes = self.attributes(opts);
        if self.caps.conditional_update {
            let (m, attrs, sc) = self.head_raw(key, path, None).await?;
            let (meta, _) = self.describe(key, &m, &attrs, sc.as_ref());
            if meta.etag != want {
                return Err(precondition());
            }
            let mode = PutMode::Update(UpdateVersion {
                e_tag: m.e_tag,
                version: m.version,
            });
            let put = object_store::PutOptions {
                mode,
                attributes,
                ..Default::default()
            };
            return self
                .store
                .put_opts(path, PutPayload::from(body), put)
                .await
                .map_err(|e| self.err(key.as_str(), "PutObject", e));
        }
        let lock = self.take_lock(key, path).await?;
        let result = async {
            let (m, attrs, sc) = self.head_raw(key, path, None).await?;
            let (meta, _) = self.describe(key, &m, &attrs, sc.as_ref());
            if meta.etag != want {
                return Err(precondition());
            }
            let put = object_store::PutOptions {
                attributes,
                ..Default::default()
            };
            self.store
                .put_opts(path, PutPayload::from(body), put)
                .await
                .map_err(|e| self.err(key.as_str(), "PutObject", e))
        }
        .await;
        let _ = self.store.delete(&lock).await;
        result
    }

    /// Takes the If-Match lock of `path` (a create-only lock object),
    /// breaking one older than [`LOCK_STALE`].
    async fn take_lock(&self, key: &ObjectKey, path: &Path) -> Result<Path> {
        let lock = Self::lock_path(path);
        for _ in 0..2 {
            let put = object_store::PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self
                .store
                .put_opts(&lock, PutPayload::from_static(b"lock"), put)
                .await
            {
                Ok(_) => return Ok(lock),
                Err(object_store::Error::AlreadyExists { .. }) => {
                    let held = self.store.head(&lock).await.ok();
                    let stale = held.is_some_and(|m| {
                        SystemTime::from(m.last_modified)
                            .elapsed()
                            .is_ok_and(|age| age > LOCK_STALE)
                    });
                    if !stale {
                        // Another conditional write is in progress (S3's
                        // ConditionalRequestConflict).
                        return Err(Error::PreconditionFailed {
                            bucket: self.bucket.clone(),
                            key: key.to_string(),
                        });
                    }
                    let _ = self.store.delete(&lock).await;
                }
                Err(e) => return Err(self.err(key.as_str(), "PutObject", e)),
            }
        }
        Err(Error::PreconditionFailed {
            bucket: self.bucket.clone(),
            key: key.to_string(),
        })
    }
}

/// Splits chunks larger than [`STREAM_CHUNK`].
fn rechunk(
    s: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
    what: String,
) -> ByteStream {
    s.flat_map(move |r| {
        let items: Vec<Result<Bytes>> = match r {
            Ok(b) => {
                let mut out = Vec::with_capacity(b.len() / STREAM_CHUNK + 1);
                let mut at = 0;
                while at < b.len() {
                    let end = (at + STREAM_CHUNK).min(b.len());
                    out.push(Ok(b.slice(at..end)));
                    at = end;
                }
                out
            }
            Err(e) => vec![Err(Error::Unavailable {
                reason: format!("reading {what}: {e}"),
            })],
        };
        futures::stream::iter(items)
    })
    .boxed()
}

#[async_trait]
impl Storage for ObjectStoreStorage {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(&self, key: &ObjectKey, body: Bytes, opts: PutOptions) -> Result<ObjectMeta> {
        let path = self.path(key)?;
        let size = body.len() as u64;
        let etag = etag_of(&body);
        let result = if let Some(want) = &opts.if_match {
            self.put_if_match(key, &path, body, &opts, want).await?
        } else {
            let put = object_store::PutOptions {
                mode: if opts.create_only {
                    PutMode::Create
                } else {
                    PutMode::Overwrite
                },
                attributes: self.attributes(&opts),
                ..Default::default()
            };
            self.store
                .put_opts(&path, PutPayload::from(body), put)
                .await
                .map_err(|e| self.err(key.as_str(), "PutObject", e))?
        };
        if let Some(sc) = Self::new_sidecar(result.e_tag.clone(), size, etag.clone(), &opts) {
            self.write_sidecar(&path, &sc).await?;
        }
        Ok(ObjectMeta {
            key: key.clone(),
            size,
            etag,
            content_type: opts.content_type,
            cache_control: opts.cache_control,
            last_modified: SystemTime::now(),
            version_id: result.version,
            metadata: opts.metadata,
            tag_count: None,
        })
    }

    async fn get_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<GetResult> {
        let (meta, stream) = self.get_stream_version(key, version_id).await?;
        let chunks: Vec<Bytes> = stream.try_collect().await?;
        Ok(GetResult {
            meta,
            body: Bytes::from(chunks.concat()),
        })
    }

    async fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        let invalid = |size| Error::InvalidRange {
            key: key.to_string(),
            range: range.clone(),
            size,
        };
        if range.start >= range.end {
            let m = self
                .store
                .head(&path)
                .await
                .map_err(|e| self.err(key.as_str(), "GetObject", e))?;
            return Err(invalid(m.size));
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            ..GetOptions::default()
        };
        match self.store.get_opts(&path, opts).await {
            Ok(r) => r
                .bytes()
                .await
                .map_err(|e| self.err(key.as_str(), "GetObject", e)),
            Err(object_store::Error::NotFound { .. }) => Err(self.not_found(key)),
            Err(e) => {
                // Backends word an unsatisfiable range differently; the
                // size decides.
                match self.store.head(&path).await {
                    Ok(m) if range.start >= m.size => Err(invalid(m.size)),
                    _ => Err(self.err(key.as_str(), "GetObject", e)),
                }
            }
        }
    }

    async fn get_stream_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
    ) -> Result<(ObjectMeta, ByteStream)> {
        let path = self.path(key)?;
        let opts = GetOptions {
            version: Self::version_opts(version_id),
            ..GetOptions::default()
        };
        let r = self
            .store
            .get_opts(&path, opts)
            .await
            .map_err(|e| self.err(key.as_str(), "GetObject", e))?;
        if !Self::is_version(&r.meta, version_id) {
            return Err(self.not_found(key));
        }
        let sidecar = self.read_sidecar(&path).await?;
        let (meta, _) = self.describe(key, &r.meta, &r.attributes, sidecar.as_ref());
        let what = format!("{}/{key}", self.bucket);
        Ok((meta, rechunk(r.into_stream(), what)))
    }

    async fn head_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<ObjectMeta> {
        let path = self.path(key)?;
        let (m, attrs, sc) = self.head_raw(key, &path, version_id).await?;
        Ok(self.describe(key, &m, &attrs, sc.as_ref()).0)
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<ObjectMeta> {
        let (src, dst) = (self.path(from)?, self.path(to)?);
        let (m, _, sc) = self.head_raw(from, &src, None).await?;
        let described = sc.filter(|s| s.describes(&m));
        self.store
            .copy(&src, &dst)
            .await
            .map_err(|e| self.err(from.as_str(), "CopyObject", e))?;
        let (dm, dattrs, _) = self.head_raw(to, &dst, None).await?;
        let sidecar = match described {
            Some(mut s) => {
                s.backend_etag = dm.e_tag.clone().unwrap_or_default();
                s.size = dm.size;
                Some(s)
            }
            // The source had no sidecar: the copy carries what the backend
            // kept natively, and no tags.
            None => None,
        };
        if let Some(s) = &sidecar {
            self.write_sidecar(&dst, s).await?;
        }
        Ok(self.describe(to, &dm, &dattrs, sidecar.as_ref()).0)
    }

    async fn delete_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<()> {
        let path = self.path(key)?;
        if let Some(v) = version_id {
            match self.store.head(&path).await {
                Ok(m) if Self::is_version(&m, Some(v)) => {}
                // Deleting a missing version succeeds, as in S3.
                Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(self.err(key.as_str(), "DeleteObject", e)),
            }
        }
        // The sidecar first: a crash in between leaves an object without
        // tags (unscanned), never tags without their object.
        match self.store.delete(&Self::sidecar_path(&path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.err(key.as_str(), "DeleteObject", e)),
        }
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key.as_str(), "DeleteObject", e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        if prefix.starts_with(RESERVED_PREFIX) || prefix.contains("//") || prefix.starts_with('/') {
            return Ok(Vec::new());
        }
        let dir = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let dir = if dir.is_empty() {
            None
        } else {
            match Path::parse(dir) {
                Ok(p) => Some(p),
                Err(_) => return Ok(Vec::new()),
            }
        };
        let mut found: Vec<object_store::ObjectMeta> = match self
            .store
            .list(dir.as_ref())
            .try_filter(|m| {
                let k = m.location.as_ref();
                futures::future::ready(k.starts_with(prefix) && !k.starts_with(RESERVED_PREFIX))
            })
            .try_collect()
            .await
        {
            Ok(v) => v,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(self.err(prefix, "ListObjectsV2", e)),
        };
        found.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        let described = futures::stream::iter(found.into_iter().filter_map(|m| {
            let key = ObjectKey::new(m.location.as_ref().to_owned()).ok()?;
            Some(async move {
                let sc = self.read_sidecar(&m.location).await?;
                let (mut meta, _) = self.describe(&key, &m, &Attributes::new(), sc.as_ref());
                meta.metadata.clear();
                meta.tag_count = None;
                Ok::<_, Error>(meta)
            })
        }))
        .buffered(8)
        .try_collect()
        .await?;
        Ok(described)
    }

    async fn put_tags_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
        tags: &Tags,
    ) -> Result<()> {
        let path = self.path(key)?;
        let (m, attrs, sc) = self.head_raw(key, &path, version_id).await?;
        let Some(backend_etag) = m.e_tag.clone() else {
            return Err(Error::S3 {
                operation: "PutObjectTagging",
                code: "NotImplemented".to_owned(),
                status: 501,
                message: format!(
                    "{}/{key}: the backend gives no ETag to bind tags to",
                    self.bucket
                ),
            });
        };
        let mut s = match sc.filter(|s| s.describes(&m)) {
            Some(s) => s,
            None => {
                let (meta, _) = self.describe(key, &m, &attrs, None);
                Sidecar {
                    v: SIDECAR_VERSION,
                    backend_etag,
                    size: m.size,
                    etag: meta.etag,
                    content_type: meta.content_type,
                    cache_control: meta.cache_control,
                    metadata: meta.metadata,
                    tags: Default::default(),
                }
            }
        };
        s.tags = tag_map(tags);
        self.write_sidecar(&path, &s).await
    }

    async fn get_tags_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<Tags> {
        let path = self.path(key)?;
        let (m, attrs, sc) = self.head_raw(key, &path, version_id).await?;
        Ok(self.describe(key, &m, &attrs, sc.as_ref()).1)
    }
}

/// Azure SAS URLs as the upload API's signer (what `sign_upload` does,
/// through the interface S3 presigned PUTs share).
///
/// Capabilities: [`SignerCapabilities::AZURE_SAS`] on every backend (a SAS
/// pins no header: neither the type, the length, create-only nor
/// metadata; no POST forms, no presigned multipart); a backend that cannot
/// sign at all (local disk, memory, or built without feature `azure`)
/// answers [`SignError::Unsupported`]. [`PutToSign::size`],
/// [`PutToSign::filename`], [`PutToSign::metadata`] and
/// [`PutToSign::now`] are not signed.
#[async_trait]
impl UploadSigner for ObjectStoreStorage {
    fn capabilities(&self) -> SignerCapabilities {
        SignerCapabilities::AZURE_SAS
    }

    async fn sign_put(&self, req: &PutToSign<'_>) -> std::result::Result<SignedUpload, SignError> {
        self.sign_upload(req.key, req.content_type, req.expires_in)
            .await
            .map_err(|e| match e {
                Error::S3 { code, message, .. } if code == "NotImplemented" => {
                    SignError::Unsupported {
                        operation: "PutObject",
                        reason: message,
                    }
                }
                e => SignError::Core(e),
            })
    }
}
