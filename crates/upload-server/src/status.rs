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
    /// Seconds to wait for the outcome, 0..=[`MAX_STATUS_WAIT`].
    #[serde(default)]
    wait: Option<u64>,
}

/// One of an owner's waiting status requests, given back when dropped.
struct WaitSlot {
    waiting: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    owner: String,
}

impl WaitSlot {
    /// A slot for `owner`, or 429 `too_many_waits` when all of
    /// [`ServerConfig::max_waits_per_owner`](crate::ServerConfig::max_waits_per_owner) are taken.
    fn take(config: &crate::ServerConfig, owner: &Owner) -> Result<Self, ApiError> {
        let mut map = config
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(owner.as_str().to_owned()).or_insert(0);
        if *n >= config.max_waits_per_owner {
            return Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "too_many_waits",
                message: format!(
                    "{} status requests of {owner} are already waiting; ask without wait, or later",
                    config.max_waits_per_owner
                ),
            });
        }
        *n += 1;
        Ok(Self {
            waiting: config.waiting.clone(),
            owner: owner.as_str().to_owned(),
        })
    }
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        let mut map = self
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.owner);
            }
        }
    }
}

/// Longest `wait` of `GET /uploads/status`, in seconds (below the usual
/// 60 s idle timeout of load balancers and proxies).
pub const MAX_STATUS_WAIT: u64 = 30;

/// `GET /uploads/status?key=K[&wait=S]`: 202 [`UploadStatus::Pending`]
/// until the manifest is written, then the manifest with presigned
/// variant GETs. With `wait` (seconds, 1..=[`MAX_STATUS_WAIT`]) the
/// request is held until the manifest exists or the wait is over (a long
/// poll: the store is read every 100 ms at first, backing off to every
/// second), so a client learns the outcome with one request in flight
/// instead of a polling loop.
pub(crate) async fn status(
    State(st): State<AppState>,
    owner: Owner,
    Extension(route): Extension<Arc<UploadRoute>>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Response, ApiError> {
    let key = route.owned_key(&owner, &q.key)?;
    let wait = match q.wait {
        None => 0,
        Some(w) if w <= MAX_STATUS_WAIT => w,
        Some(w) => {
            return Err(crate::routes::bad_request(format!(
                "wait is {w} s; at most {MAX_STATUS_WAIT}"
            )));
        }
    };
    let mkey = manifest_key(&key)?;
    let _slot = if wait > 0 {
        Some(WaitSlot::take(&st.config, &owner)?)
    } else {
        None
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    let mut pause = std::time::Duration::from_millis(100);
    let body = loop {
        match st.processed.get(&mkey).await {
            Ok(got) => break got.body,
            Err(upload_core::Error::NotFound { .. }) => {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Ok((StatusCode::ACCEPTED, Json(UploadStatus::Pending)).into_response());
                }
                tokio::time::sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let manifest: Manifest = serde_json::from_slice(&body).map_err(|e| ApiError {
        status: StatusCode::BAD_GATEWAY,
        code: "corrupt_manifest",
        message: format!("{mkey}: {e}"),
    })?;
    let presigner = st
        .processed_presigner
        .presigner(st.config.download_expiry)
        .await?;
    let now = SystemTime::now();
    let mut variant_urls = Vec::new();
    for v in &manifest.variants {
        let p = presigner.presign_get(
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
