//! An S3 server that keeps sizes and ETags but not the bytes: the far end
//! of `bench-multipart`'s shaped link.
//!
//! Built on `s3s` (the S3 protocol library s3s-fs is made of), so requests
//! are parsed and their SigV4 signatures verified as s3s-fs does; what it
//! does with a body is what S3 does with it on the way in: reads every
//! byte, computes its MD5 (the ETag) and, when the request names a
//! CRC-32C, checks it (400 `BadDigest` when it differs). The bytes are
//! then dropped, so completing a multipart upload is bookkeeping, as on
//! S3, where s3s-fs reads every part back, hashes it again and copies it
//! into one file (seconds per GiB: the server, not the link, would then
//! decide the benchmark).
//!
//! Operations: CreateBucket, PutObject, HeadObject, DeleteObject,
//! CreateMultipartUpload, UploadPart, CompleteMultipartUpload (multipart
//! ETag: MD5 of the parts' MD5s, `-N`), ListParts (one page, all parts),
//! AbortMultipartUpload. Anything
//! else is `NotImplemented`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use futures::StreamExt as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use md5::{Digest as _, Md5};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CreateBucketInput, CreateBucketOutput,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteObjectInput, DeleteObjectOutput,
    ETag, HeadObjectInput, HeadObjectOutput, ListPartsInput, ListPartsOutput, Part, PutObjectInput,
    PutObjectOutput, StreamingBlob, Timestamp, UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

/// What the server keeps of an object.
#[derive(Debug, Clone)]
struct Stored {
    size: u64,
    etag: String,
}

/// An open multipart upload: its parts by number.
#[derive(Debug, Default)]
struct Upload {
    bucket: String,
    key: String,
    parts: HashMap<i32, (Stored, [u8; 16])>,
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<String, HashMap<String, Stored>>,
    uploads: HashMap<String, Upload>,
    next_upload: u64,
}

/// The backend (see the module docs).
#[derive(Debug, Default)]
struct SinkS3 {
    state: Mutex<State>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a body to its end: its size and MD5, checked against a CRC-32C
/// header value when there is one.
async fn drain(body: Option<StreamingBlob>, crc32c: Option<&str>) -> S3Result<(u64, [u8; 16])> {
    let mut body = body.ok_or_else(|| s3_error!(IncompleteBody))?;
    let mut md5 = Md5::new();
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| s3_error!(IncompleteBody, "{e}"))?;
        md5.update(&chunk);
        if crc32c.is_some() {
            crc.update(&chunk);
        }
        size += chunk.len() as u64;
    }
    if let Some(expected) = crc32c {
        use base64::Engine as _;
        let got =
            base64::engine::general_purpose::STANDARD.encode((crc.finalize() as u32).to_be_bytes());
        if got != expected {
            return Err(s3_error!(
                BadDigest,
                "CRC-32C {got}, header says {expected}"
            ));
        }
    }
    Ok((size, md5.finalize().into()))
}

#[async_trait::async_trait]
impl S3 for SinkS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let mut st = self.state.lock().expect("state lock");
        if st.buckets.contains_key(&req.input.bucket) {
            return Err(s3_error!(BucketAlreadyOwnedByYou));
        }
        st.buckets.insert(req.input.bucket, HashMap::new());
        Ok(S3Response::new(CreateBucketOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        if !self
            .state
            .lock()
            .expect("state lock")
            .buckets
            .contains_key(&input.bucket)
        {
            return Err(s3_error!(NoSuchBucket));
        }
        let (size, md5) = drain(input.body, input.checksum_crc32c.as_deref()).await?;
        let etag = hex(&md5);
        let mut st = self.state.lock().expect("state lock");
        let bucket = st
            .buckets
            .get_mut(&input.bucket)
            .ok_or_else(|| s3_error!(NoSuchBucket))?;
        bucket.insert(
            input.key,
            Stored {
                size,
                etag: etag.clone(),
            },
        );
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let st = self.state.lock().expect("state lock");
        let bucket = st
            .buckets
            .get(&req.input.bucket)
            .ok_or_else(|| s3_error!(NoSuchBucket))?;
        let o = bucket
            .get(&req.input.key)
            .ok_or_else(|| s3_error!(NoSuchKey))?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(o.size as i64),
            e_tag: Some(ETag::Strong(o.etag.clone())),
            last_modified: Some(Timestamp::from(std::time::SystemTime::now())),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let mut st = self.state.lock().expect("state lock");
        if let Some(b) = st.buckets.get_mut(&req.input.bucket) {
            b.remove(&req.input.key);
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let mut st = self.state.lock().expect("state lock");
        if !st.buckets.contains_key(&input.bucket) {
            return Err(s3_error!(NoSuchBucket));
        }
        st.next_upload += 1;
        let id = format!("upload-{}", st.next_upload);
        st.uploads.insert(
            id.clone(),
            Upload {
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                parts: HashMap::new(),
            },
        );
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(InvalidArgument, "part number out of 1..=10000"));
        }
        if !self
            .state
            .lock()
            .expect("state lock")
            .uploads
            .contains_key(&input.upload_id)
        {
            return Err(s3_error!(NoSuchUpload));
        }
        let (size, md5) = drain(input.body, input.checksum_crc32c.as_deref()).await?;
        let etag = hex(&md5);
        let mut st = self.state.lock().expect("state lock");
        let upload = st
            .uploads
            .get_mut(&input.upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        upload.parts.insert(
            input.part_number,
            (
                Stored {
                    size,
                    etag: etag.clone(),
                },
                md5,
            ),
        );
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let listed = input
            .multipart_upload
            .and_then(|m| m.parts)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| s3_error!(InvalidPart, "no parts"))?;
        let mut st = self.state.lock().expect("state lock");
        let upload = st
            .uploads
            .remove(&input.upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        if upload.bucket != input.bucket || upload.key != input.key {
            return Err(s3_error!(NoSuchUpload));
        }
        let mut all = Md5::new();
        let mut size = 0;
        let mut previous = 0;
        for p in &listed {
            let n = p.part_number.unwrap_or(0);
            if n <= previous {
                return Err(s3_error!(InvalidPartOrder));
            }
            previous = n;
            let (part, md5) = upload
                .parts
                .get(&n)
                .ok_or_else(|| s3_error!(InvalidPart, "part {n} was not uploaded"))?;
            if let Some(e) = &p.e_tag
                && e.value() != part.etag
            {
                return Err(s3_error!(InvalidPart, "part {n}: ETag differs"));
            }
            all.update(md5);
            size += part.size;
        }
        let etag = format!("{}-{}", hex(&all.finalize()), listed.len());
        st.buckets
            .get_mut(&input.bucket)
            .ok_or_else(|| s3_error!(NoSuchBucket))?
            .insert(
                input.key.clone(),
                Stored {
                    size,
                    etag: etag.clone(),
                },
            );
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let st = self.state.lock().expect("state lock");
        let upload = st
            .uploads
            .get(&req.input.upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        let mut parts: Vec<Part> = upload
            .parts
            .iter()
            .map(|(n, (p, _))| Part {
                part_number: Some(*n),
                e_tag: Some(ETag::Strong(p.etag.clone())),
                size: Some(p.size as i64),
                ..Default::default()
            })
            .collect();
        parts.sort_by_key(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(req.input.bucket),
            key: Some(req.input.key),
            upload_id: Some(req.input.upload_id),
            is_truncated: Some(false),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.state
            .lock()
            .expect("state lock")
            .uploads
            .remove(&req.input.upload_id);
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

/// A running sink server; stops when dropped.
#[derive(Debug)]
pub struct SinkServer {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl SinkServer {
    /// Starts the server on `127.0.0.1` (a free port), on its own Tokio
    /// runtime (two worker threads), accepting requests signed with
    /// `access_key` / `secret_key`.
    ///
    /// # Errors
    /// When the runtime cannot start or the port cannot be bound.
    pub fn start(access_key: &str, secret_key: &str) -> std::io::Result<Self> {
        let mut b = s3s::service::S3ServiceBuilder::new(SinkS3::default());
        b.set_auth(s3s::auth::SimpleAuth::from_single(access_key, secret_key));
        let service = b.build();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sink-s3")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        runtime.spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Ok(Self {
            addr,
            runtime: Some(runtime),
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for SinkServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
