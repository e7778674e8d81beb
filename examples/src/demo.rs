//! The browser demo pages, served by `presign-server --demo` on the same
//! origin as its API (so the API needs no CORS of its own; the bucket's
//! CORS rule lets the pages upload straight to storage):
//!
//! | path | what |
//! |---|---|
//! | `/`, `/index.html` | our page: presigned PUT or POST (a toggle), multipart above the server's threshold with parallel, resumable parts, progress bars, the worker's thumbnail once the manifest is written |
//! | `/uppy.html` | the same API driven by Uppy's Dashboard and `@uppy/aws-s3` (its `endpoint` option) |
//! | `/uppy6.html` | the same API driven by Uppy 6 (`@uppy/aws-s3` 6.x in its `signRequest` mode, against `POST /s3/sign`) |
//! | `/demo.js`, `/demo.css` | the page's script and style (plain JS, no build step) |
//! | `/vendor/uppy/*` | Uppy's prebuilt bundle, from `examples/web/node_modules/uppy/dist` after `npm ci` in `examples/web` (the versions are pinned in its `package.json` and `package-lock.json`) |
//!
//! | `/vendor/uppy6/*` | Uppy 6's bundle (`uppy6.js`, `uppy6.css`), from `examples/web/uppy6/dist`: `npm ci && npm run build` in `examples/web/uppy6` (its own package: Uppy 6's peers conflict with Uppy 5's; `scripts/demo.sh` does both) |
//!
//! The pages are compiled into the binary; only Uppy's bundles are read from
//! disk. Without them `/vendor/uppy/*` and `/vendor/uppy6/*` answer 404
//! with a JSON error naming the commands to run.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::services::ServeDir;

/// `examples/web` of this source tree, where `npm ci` puts Uppy's bundle
/// (`node_modules/uppy/dist`).
pub const WEB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web");

const INDEX_HTML: &str = include_str!("../web/index.html");
const UPPY_HTML: &str = include_str!("../web/uppy.html");
const UPPY6_HTML: &str = include_str!("../web/uppy6.html");
const DEMO_JS: &str = include_str!("../web/demo.js");
const DEMO_CSS: &str = include_str!("../web/demo.css");

/// Uppy's bundle directory under `web_dir`: `node_modules/uppy/dist`.
pub fn uppy_dist(web_dir: &Path) -> PathBuf {
    web_dir.join("node_modules/uppy/dist")
}

/// Uppy 6's bundle directory under `web_dir`: `uppy6/dist` (built by
/// `npm run build` there).
pub fn uppy6_dist(web_dir: &Path) -> PathBuf {
    web_dir.join("uppy6/dist")
}

/// Serves `dist`, answering 404 with `missing` (JSON) for absent files.
fn bundle(dist: &Path, missing: String) -> ServeDir<axum::routing::MethodRouter> {
    ServeDir::new(dist).fallback(get(move || {
        let message = missing.clone();
        async move {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"error": "not_found", "message": message})),
            )
        }
    }))
}

/// The demo routes, to merge with `upload_server::AppState::router`:
/// the pages, and Uppy's bundles from [`uppy_dist`]`(web_dir)` and
/// [`uppy6_dist`]`(web_dir)`.
pub fn routes(web_dir: &Path) -> Router {
    let dist = uppy_dist(web_dir);
    let missing = format!(
        "Uppy's bundle is not in {}: run `npm ci` in {}, or point the server at a folder \
         that has it with --web-dir or UPLOAD_DEMO_WEB_DIR (a copied or installed binary \
         cannot rely on the source tree it was built from)",
        dist.display(),
        web_dir.display()
    );
    let vendor = bundle(&dist, missing);
    let dist6 = uppy6_dist(web_dir);
    let missing6 = format!(
        "Uppy 6's bundle is not in {}: run `npm ci && npm run build` in {}",
        dist6.display(),
        web_dir.join("uppy6").display()
    );
    let vendor6 = bundle(&dist6, missing6);
    let page = |ty: &'static str, body: &'static str| {
        get(move || async move {
            (
                [
                    (header::CONTENT_TYPE, ty),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
                .into_response()
        })
    };
    let html = "text/html; charset=utf-8";
    Router::new()
        .route("/", page(html, INDEX_HTML))
        .route("/index.html", page(html, INDEX_HTML))
        .route("/uppy.html", page(html, UPPY_HTML))
        .route("/uppy6.html", page(html, UPPY6_HTML))
        .route("/demo.js", page("text/javascript; charset=utf-8", DEMO_JS))
        .route("/demo.css", page("text/css; charset=utf-8", DEMO_CSS))
        .nest_service("/vendor/uppy", vendor)
        .nest_service("/vendor/uppy6", vendor6)
}
