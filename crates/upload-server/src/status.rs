//! `GET /uploads/status`: what the worker made of an upload.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use upload_pipeline::Manifest;
use upload_pipeline::manifest::manifest_key;

use crate::auth::*;
use crate::config::*;
use crate::error::*;
use crate::route::*;

/// The answer to `GET /uploads/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UploadStatus {
    /// The worker has not finished with the upload yet.
    Pending,
    /// The worker's manifest, with presigned GETs of each variant.
    Processed {
        /// The manifest.
        manifest: Box<Manifest>,
        /// `(variant name, presigned GET URL)`.
        variant_urls: Vec<(String, String)>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusQuery {
    key: String,
}

/// `GET /uploads/status?key=K`: 202 [`UploadStatus::Pending`] until the
/// manifest is written, then the manifest with presigned variant GETs.
pub(crate) async fn status(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Response, ApiError> {
    let key = route.owned_key(&owner, &q.key)?;
    let mkey = manifest_key(&key)?;
    let body = match st.processed.get(&mkey).await {
        Ok(got) => got.body,
        Err(upload_core::Error::NotFound { .. }) => {
            return Ok((StatusCode::ACCEPTED, Json(UploadStatus::Pending)).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let manifest: Manifest = serde_json::from_slice(&body).map_err(|e| ApiError {
        status: StatusCode::BAD_GATEWAY,
        code: "corrupt_manifest",
        message: format!("{mkey}: {e}"),
    })?;
    let now = SystemTime::now();
    let mut variant_urls = Vec::new();
    for v in &manifest.variants {
        let p = st.processed_presigner.presign_get(
            st.processed.bucket(),
            &v.key,
            st.config.download_expiry,
            now,
        )?;
        variant_urls.push((v.name.clone(), p.url.to_string()));
    }
    Ok(Json(UploadStatus::Processed {
        manifest: Box::new(manifest),
        variant_urls,
    })
    .into_response())
}
