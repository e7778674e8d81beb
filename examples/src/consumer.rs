//! A consumer of the SDK, as a real app would be: its own bearer-token
//! authentication and its own SQLite database (rusqlite), the upload API
//! mounted under `/api/uploads` with an `avatar` route (images, 5 MB) and
//! a `document` route (PDF, 25 MB, a hook that files the document in the
//! database before anything is signed), and a webhook receiver that
//! verifies each delivery and stores the results on the user's records.
//!
//! | method and path | what |
//! |---|---|
//! | `/api/uploads/routes/{avatar,document}/...` | the upload API (`upload_server`) |
//! | `POST /webhooks/uploads` | upload outcomes (Standard Webhooks), verified |
//! | `GET /me` | the user, their avatar variants and documents, with presigned GETs |

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use upload_core::UploadPolicy;
use upload_pipeline::notify::{NotificationOutcome, UploadNotification, WebhookVerifier};
use upload_pipeline::{Fit, OutputFormat, RouteProcessing, VariantSpec, WorkerConfig};
use upload_presign::PresignerSource;
use upload_server::http::request::Parts;
use upload_server::{
    AuthError, Authorizer, FnAuthorizer, FnHook, HookRefusal, HookRequest, Owner, ServerConfig,
    UploadMetadata, UploadRoute,
};

/// The app's database: one SQLite connection (a file, or `:memory:`).
pub type Db = Arc<Mutex<Connection>>;

/// Opens (and creates the tables of) the app's database at `path`.
///
/// # Errors
/// SQLite's.
pub fn open_db(path: &str) -> rusqlite::Result<Db> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         CREATE TABLE IF NOT EXISTS users (
             id TEXT PRIMARY KEY, token TEXT NOT NULL UNIQUE);
         CREATE TABLE IF NOT EXISTS avatars (
             user_id TEXT PRIMARY KEY REFERENCES users(id),
             upload_key TEXT NOT NULL, variants TEXT NOT NULL, placeholder TEXT,
             processed_at TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS documents (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             user_id TEXT NOT NULL REFERENCES users(id), title TEXT NOT NULL,
             upload_key TEXT, state TEXT NOT NULL DEFAULT 'pending', reason TEXT);
         CREATE TABLE IF NOT EXISTS webhooks_seen (id TEXT PRIMARY KEY);",
    )?;
    Ok(Arc::new(Mutex::new(conn)))
}

/// Adds a user with a bearer token.
///
/// # Errors
/// SQLite's (a taken ID or token).
pub fn add_user(db: &Db, id: &str, token: &str) -> rusqlite::Result<()> {
    lock(db).execute(
        "INSERT INTO users (id, token) VALUES (?1, ?2)",
        params![id, token],
    )?;
    Ok(())
}

fn lock(db: &Db) -> std::sync::MutexGuard<'_, Connection> {
    db.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `Authorization: Bearer {token}` of a user in the database.
pub fn authorizer(db: Db) -> Arc<dyn Authorizer> {
    Arc::new(FnAuthorizer(move |parts: &Parts| {
        let token = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let db = db.clone();
        async move {
            let token =
                token.ok_or_else(|| AuthError::unauthorized("a bearer token is required"))?;
            let user: Option<String> = lock(&db)
                .query_row("SELECT id FROM users WHERE token = ?1", [&token], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| AuthError::unauthorized(e.to_string()))?;
            let user = user.ok_or_else(|| AuthError::unauthorized("unknown token"))?;
            Owner::new(user).map_err(|e| AuthError::forbidden(e.to_string()))
        }
    }))
}

/// The upload routes: `avatar` (JPEG, PNG, WebP up to 5 MB, keys under
/// `avatars/`) and `document` (PDF up to 25 MB, keys under `documents/`,
/// whose hook needs a `title`, files the document as pending and signs
/// its ID into the upload as `document-id`). Only the routes are served.
///
/// # Errors
/// A policy or route the SDK refuses (none here).
pub fn upload_config(db: Db) -> Result<ServerConfig, Box<dyn std::error::Error>> {
    let avatar = UploadRoute::new(
        "avatar",
        UploadPolicy::new(["image/jpeg", "image/png", "image/webp"], 5_000_000)?,
    )?
    .with_key_prefix("avatars")?;
    let document = UploadRoute::new(
        "document",
        UploadPolicy::new(["application/pdf"], 25_000_000)?,
    )?
    .with_key_prefix("documents")?
    // Create-only PUTs only: a replayed POST form could replace a
    // document after it was processed.
    .with_post_forms(false)
    .with_hook(FnHook(move |req: HookRequest| {
        let db = db.clone();
        async move {
            let title = req.input["title"]
                .as_str()
                .filter(|t| {
                    (1..=100).contains(&t.len()) && t.bytes().all(|b| (0x20..0x7f).contains(&b))
                })
                .ok_or_else(|| {
                    HookRefusal::new(
                        "a document needs a title: 1 to 100 printable ASCII characters",
                    )
                })?;
            let conn = lock(&db);
            conn.execute(
                "INSERT INTO documents (user_id, title) VALUES (?1, ?2)",
                params![req.owner.as_str(), title],
            )
            .map_err(|e| HookRefusal::new(format!("cannot file the document: {e}")))?;
            let id = conn.last_insert_rowid();
            Ok(UploadMetadata::from([(
                "document-id".to_owned(),
                id.to_string(),
            )]))
        }
    }));
    let mut config = ServerConfig::new(UploadPolicy::new(["application/pdf"], 1)?)
        .with_route(avatar)?
        .with_route(document)?;
    config.serve_default_route = false;
    Ok(config)
}

/// The worker's side of the routes: a 256 px square WebP of each avatar
/// (cover crop) and its 64 px placeholder-sized copy; documents are
/// scanned and kept.
///
/// # Errors
/// None with these specs.
pub fn worker_routes(config: WorkerConfig) -> upload_pipeline::Result<WorkerConfig> {
    let square = |name: &str, side: u32| {
        VariantSpec::new(name, side, side, OutputFormat::WebP { quality: 80.0 })
            .map(|v| v.with_fit(Fit::Cover))
    };
    // The routes' own policies, checked again on the real bytes.
    let images = UploadPolicy::new(["image/jpeg", "image/png", "image/webp"], 5_000_000)?;
    let pdf = UploadPolicy::new(["application/pdf"], 25_000_000)?;
    Ok(config
        .with_route(
            "avatar",
            RouteProcessing::variants(vec![square("avatar-256", 256)?, square("avatar-64", 64)?])
                .with_policy(images),
        )
        .with_route("document", RouteProcessing::scan_only().with_policy(pdf)))
}

/// What the app's own routes need.
#[derive(Clone)]
pub struct Consumer {
    /// The database.
    pub db: Db,
    /// Verifies webhook deliveries (the secret the deliverer signs with).
    pub verifier: WebhookVerifier,
    /// Signs GETs of variants for `GET /me`.
    pub processed_presigner: Arc<dyn PresignerSource>,
    /// The processed bucket's name.
    pub processed_bucket: String,
}

/// The app: the upload API under `/api/uploads`, the webhook receiver and
/// `GET /me`.
pub fn router(app: Consumer, uploads: upload_server::AppState) -> Router {
    Router::new()
        .route("/webhooks/uploads", post(webhook))
        .route("/me", get(me))
        .with_state((app, uploads.authorizer.clone()))
        .nest("/api/uploads", uploads.router())
}

type AppCtx = (Consumer, Arc<dyn Authorizer>);

/// `POST /webhooks/uploads`: verified, applied once per `webhook-id`
/// (a redelivery answers 200 and changes nothing).
async fn webhook(
    State((app, _)): State<AppCtx>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let id = match app.verifier.verify(&headers, &body) {
        Ok(id) => id,
        Err(e) => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": e.to_string()})),
            );
        }
    };
    let n = match std::str::from_utf8(&body)
        .map_err(|e| e.to_string())
        .and_then(|b| UploadNotification::from_json(b).map_err(|e| e.to_string()))
    {
        Ok(n) => n,
        Err(e) => return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))),
    };
    let mut conn = lock(&app.db);
    let result = (|| -> rusqlite::Result<bool> {
        let tx = conn.transaction()?;
        if tx.execute(
            "INSERT OR IGNORE INTO webhooks_seen (id) VALUES (?1)",
            [&id],
        )? == 0
        {
            return Ok(false);
        }
        apply(&tx, &n)?;
        tx.commit()?;
        Ok(true)
    })();
    match result {
        Ok(applied) => (StatusCode::OK, Json(json!({"applied": applied}))),
        // Not committed: the deliverer retries later.
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        ),
    }
}

/// Stores an outcome on the user's records.
fn apply(tx: &rusqlite::Transaction<'_>, n: &UploadNotification) -> rusqlite::Result<()> {
    let (Some(owner), key) = (n.context.owner.as_deref(), n.object.key.as_str()) else {
        return Ok(());
    };
    let document = n
        .context
        .metadata
        .get("document-id")
        .and_then(|d| d.parse::<i64>().ok());
    match (n.context.route.as_deref(), &n.outcome) {
        (
            Some("avatar"),
            NotificationOutcome::Processed {
                variants, image, ..
            },
        ) => {
            let variants: Vec<Value> = variants
                .iter()
                .map(|v| json!({"name": v.name, "key": v.key.as_str(), "width": v.width, "height": v.height}))
                .collect();
            let placeholder = image
                .as_ref()
                .and_then(|i| i.placeholder.as_ref())
                .map(|p| p.thumbhash.clone());
            tx.execute(
                // Deliveries can come out of order: an older outcome never
                // replaces a newer avatar.
                "INSERT INTO avatars (user_id, upload_key, variants, placeholder, processed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (user_id) DO UPDATE SET upload_key = ?2, variants = ?3,
                     placeholder = ?4, processed_at = ?5
                 WHERE excluded.processed_at >= avatars.processed_at",
                params![
                    owner,
                    key,
                    Value::from(variants).to_string(),
                    placeholder,
                    n.timestamp
                ],
            )?;
        }
        (Some("avatar"), NotificationOutcome::Removed) => {
            tx.execute(
                "DELETE FROM avatars WHERE user_id = ?1 AND upload_key = ?2",
                params![owner, key],
            )?;
        }
        (Some("document"), outcome) => {
            let Some(id) = document else { return Ok(()) };
            let (state, reason) = match outcome {
                NotificationOutcome::Processed { .. } => ("ready", None),
                NotificationOutcome::Rejected { reason } => ("rejected", reason.clone()),
                NotificationOutcome::Quarantined {
                    signature, reason, ..
                } => ("quarantined", signature.clone().or_else(|| reason.clone())),
                NotificationOutcome::Removed => ("removed", None),
            };
            // Only the owner's own document, whatever the metadata says,
            // bound to its first upload, and only forward: pending ->
            // ready, rejected or quarantined -> removed (deliveries can
            // come out of order).
            tx.execute(
                "UPDATE documents SET upload_key = ?1, state = ?2, reason = ?3
                 WHERE id = ?4 AND user_id = ?5 AND (upload_key IS NULL OR upload_key = ?1)
                   AND (state = 'pending' OR (?2 = 'removed' AND state != 'removed'))",
                params![key, state, reason, id, owner],
            )?;
        }
        _ => {}
    }
    Ok(())
}

/// `GET /me`: the user's avatar variants (presigned GETs, 5 minutes) and
/// documents.
async fn me(State((app, auth)): State<AppCtx>, parts: Parts) -> (StatusCode, Json<Value>) {
    let owner = match auth.authorize(&parts).await {
        Ok(o) => o,
        Err(e) => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": e.to_string()})),
            );
        }
    };
    let (avatar, documents) = {
        let conn = lock(&app.db);
        let avatar: Option<(String, Option<String>)> = conn
            .query_row(
                "SELECT variants, placeholder FROM avatars WHERE user_id = ?1",
                [owner.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .unwrap_or(None);
        let documents: Vec<Value> = conn
            .prepare("SELECT id, title, state, reason FROM documents WHERE user_id = ?1 ORDER BY id")
            .and_then(|mut s| {
                s.query_map([owner.as_str()], |r| {
                    Ok(json!({"id": r.get::<_, i64>(0)?, "title": r.get::<_, String>(1)?,
                              "state": r.get::<_, String>(2)?, "reason": r.get::<_, Option<String>>(3)?}))
                })?
                .collect()
            })
            .unwrap_or_default();
        (avatar, documents)
    };
    let mut urls = serde_json::Map::new();
    let mut placeholder = None;
    if let Some((variants, thumbhash)) = avatar {
        let presigner = match app
            .processed_presigner
            .presigner(Duration::from_secs(300))
            .await
        {
            Ok(p) => p,
            Err(e) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": e.to_string()})),
                );
            }
        };
        for v in serde_json::from_str::<Vec<Value>>(&variants).unwrap_or_default() {
            let (Some(name), Some(key)) = (v["name"].as_str(), v["key"].as_str()) else {
                continue;
            };
            let Ok(key) = upload_core::ObjectKey::new(key) else {
                continue;
            };
            if let Ok(p) = presigner.presign_get(
                &app.processed_bucket,
                &key,
                Duration::from_secs(300),
                std::time::SystemTime::now(),
            ) {
                urls.insert(name.to_owned(), Value::String(p.url.to_string()));
            }
        }
        placeholder = thumbhash;
    }
    (
        StatusCode::OK,
        Json(
            json!({"user": owner.as_str(), "avatar": {"variants": urls, "thumbhash": placeholder}, "documents": documents}),
        ),
    )
}
