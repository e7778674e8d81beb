//! Presigned S3 URLs and a local endpoint that accepts them.
//!
//! - [`Presigner`]: AWS Signature Version 4 query signing (sans-IO: a pure
//!   function of credentials, time, method, bucket, key, signed headers and
//!   query), for PUT, GET and UploadPart. The same URLs work against S3 and
//!   any S3-compatible server. No checksum parameter is ever added (see
//!   aws-sdk-rust issue 1240).
//! - [`presign_upload`]: the policy-first entry point a backend calls: it
//!   checks the [`UploadPolicy`](upload_core::UploadPolicy), then signs a
//!   create-only PUT with `Content-Type`, `Content-Length` and
//!   `If-None-Match: *` pinned (a replayed URL gets 412, never replacing
//!   the original).
//! - [`Verifier`]: checks a presigned request the way S3 does (expiry,
//!   signature over the canonical request under any of its keys, signed
//!   headers, temporary credentials not expired).
//! - [`LocalEndpoint`]: an HTTP server on 127.0.0.1 that verifies presigned
//!   URLs and writes into any [`Storage`](upload_core::Storage) and
//!   [`MultipartStore`](upload_core::MultipartStore), answering refusals
//!   with S3-style XML errors, so in-memory backends accept direct uploads.
//! - [`RefreshingPresigner`]: a presigner whose credentials come from a
//!   [`CredentialsProvider`] (fixed, a closure, or with feature `s3` the AWS
//!   chain) and are refreshed before they expire; it and a fixed
//!   `Arc<Presigner>` are [`PresignerSource`]s, asked per request for a
//!   presigner whose credentials outlive the URL.
//! - [`S3UploadSigner`]: presigned PUTs as an
//!   [`UploadSigner`](upload_core::UploadSigner), the interface the upload
//!   API signs single uploads through (Azure SAS is another).
//! - [`serve`]: serves a router with header-read and body-idle timeouts
//!   ([`ServerTimeouts`]).

#[cfg(feature = "cloudfront")]
pub mod cloudfront;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod headers;
pub mod post;
pub mod provider;
pub mod refresh;
#[cfg(feature = "s3")]
pub mod s3;
pub mod server;
pub mod sigv4;
mod upload_signer;
pub mod verify;

pub use credentials::Credentials;
pub use endpoint::{EndpointBucket, LocalEndpoint, RunningEndpoint};
pub use post::{
    PostRequest, PresignedPost, presign_post_upload, presign_post_upload_with_metadata,
};
pub use provider::CredentialsProvider;
pub use refresh::{PresignerSource, RefreshingPresigner};
pub use server::{BodyIdleTimeout, ServerTimeouts, serve};

pub use error::{Error, Result};
pub use sigv4::{
    AddressingStyle, Method, PresignRequest, PresignedRequest, PresignedUrl, Presigner,
    presign_upload,
};
pub use upload_signer::S3UploadSigner;
pub use url::Url;
pub use verify::{IncomingRequest, VerifiedRequest, Verifier};
